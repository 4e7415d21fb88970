"""Note templates are files: TOML front matter between `+++` lines (name, sections, per-section
instructions, which statement kinds each section takes, the length budget), then an optional
Jinja2 body that lays the note out (default: `_layout.j2`). Built-ins live beside this module; a
clinic adds or replaces one by dropping a `*.j2` file into `notes.templates_dir`."""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from clinic.notes.model import KINDS

log = logging.getLogger(__name__)

AUDIENCES = ("clinician", "patient")
_FENCE = "+++"


class TemplateError(ValueError):
    """A template file that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class TemplateSection:
    key: str
    title: str
    takes: tuple[str, ...]  # statement kinds routed here
    instruction: str  # what belongs in the section (for reviewers and the LLM generator)
    intro: bool = False  # the intro line from extracted facts opens this section


@dataclass(frozen=True)
class Template:
    name: str
    description: str
    audience: str  # clinician: third person; patient: second person, plain language
    budget_words: int
    sections: tuple[TemplateSection, ...]
    body: str  # Jinja2 source
    source: str  # file it came from
    reading_grade_max: float | None = None
    # With budget_share the budget follows the visit: share × spoken words, at least budget_min_words,
    # at most budget_words (a 5-minute visit does not get a 2-hour visit's note).
    budget_share: float | None = None
    budget_min_words: int = 0

    def budget_for(self, spoken_words: int) -> int:
        if self.budget_share is None:
            return self.budget_words
        return int(min(self.budget_words, max(self.budget_min_words, self.budget_share * spoken_words)))

    def render(self, context: dict[str, Any]) -> str:
        return _compiled(self.body).render(**context).strip() + "\n"


@cache
def _environment() -> SandboxedEnvironment:
    # Sandboxed: a clinic's template file must not reach Python internals.
    return SandboxedEnvironment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                                keep_trailing_newline=True, autoescape=False)


@cache
def _compiled(body: str) -> jinja2.Template:
    return _environment().from_string(body)


def _default_body() -> str:
    return resources.files("clinic.notes").joinpath("templates", "_layout.j2").read_text("utf-8")


def parse(text: str, source: str) -> Template:
    """A template from its file text, or TemplateError naming `source` and the problem."""
    if not text.startswith(_FENCE):
        raise TemplateError(f"{source}: must start with a '+++' line opening the TOML front matter")
    try:
        front, body = text[len(_FENCE):].split(f"\n{_FENCE}", 1)
    except ValueError:
        raise TemplateError(f"{source}: front matter is not closed by a '+++' line") from None
    try:
        meta = tomllib.loads(front)
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(f"{source}: front matter is not valid TOML: {exc}") from None
    body = body.lstrip("\n") if body.strip() else _default_body()
    known = {"name", "description", "audience", "budget_words", "budget_share", "budget_min_words",
             "reading_grade_max", "sections"}
    for key in meta:
        if key not in known:
            raise TemplateError(f"{source}: unknown key {key!r} (known: {', '.join(sorted(known))})")
    name = meta.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 256:
        raise TemplateError(f"{source}: 'name' must be a non-empty string of at most 256 characters")
    audience = meta.get("audience", "clinician")
    if audience not in AUDIENCES:
        raise TemplateError(f"{source}: audience {audience!r} is not one of {', '.join(AUDIENCES)}")
    budget = meta.get("budget_words", 450)
    if not isinstance(budget, int) or not 20 <= budget <= 20_000:
        raise TemplateError(f"{source}: budget_words must be an integer from 20 to 20000, got {budget!r}")
    share = meta.get("budget_share")
    if share is not None and (not isinstance(share, int | float) or not 0 < share <= 1):
        raise TemplateError(f"{source}: budget_share must be a number above 0 and at most 1, got {share!r}")
    min_words = meta.get("budget_min_words", 0)
    if not isinstance(min_words, int) or not 0 <= min_words <= budget:
        raise TemplateError(f"{source}: budget_min_words must be an integer from 0 to budget_words, got {min_words!r}")
    grade = meta.get("reading_grade_max")
    if grade is not None and not isinstance(grade, int | float):
        raise TemplateError(f"{source}: reading_grade_max must be a number")
    raw_sections = meta.get("sections")
    if not isinstance(raw_sections, list) or not raw_sections:
        raise TemplateError(f"{source}: needs at least one [[sections]] table")
    sections = tuple(_section(s, i, source) for i, s in enumerate(raw_sections, 1))
    keys = [s.key for s in sections]
    if len(set(keys)) != len(keys):
        raise TemplateError(f"{source}: section keys repeat: {', '.join(keys)}")
    try:
        _environment().parse(body)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{source}: Jinja2 body line {exc.lineno}: {exc.message}") from None
    template = Template(name=name.strip(), description=str(meta.get("description", "")), audience=audience,
                        budget_words=budget, sections=sections, body=body, source=source,
                        reading_grade_max=float(grade) if grade is not None else None,
                        budget_share=float(share) if share is not None else None, budget_min_words=min_words)
    _try_render(template)
    return template


def _section(raw: Any, index: int, source: str) -> TemplateSection:
    where = f"{source}: sections[{index}]"
    if not isinstance(raw, dict):
        raise TemplateError(f"{where} must be a table")
    unknown = set(raw) - {"key", "title", "takes", "instruction", "intro"}
    if unknown:
        raise TemplateError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    for key in ("key", "title"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise TemplateError(f"{where}: {key!r} must be a non-empty string")
    takes = raw.get("takes", [])
    if not isinstance(takes, list) or not all(isinstance(t, str) for t in takes):
        raise TemplateError(f"{where}: 'takes' must be a list of statement kinds")
    for kind in takes:
        if kind not in KINDS:
            raise TemplateError(f"{where}: unknown kind {kind!r} in 'takes' (known: {', '.join(KINDS)})")
    return TemplateSection(key=raw["key"], title=raw["title"], takes=tuple(takes),
                           instruction=str(raw.get("instruction", "")), intro=bool(raw.get("intro", False)))


def _try_render(t: Template) -> None:
    """Render once with a sample note so a body that fails (unknown variable, bad filter) fails at load."""
    sample = {"fmt": "text", "template": t.name, "sections": [
        {"key": s.key, "title": s.title, "instruction": s.instruction,
         "sentences": [{"text": "Sample sentence.", "evidence": ["s1"]}]} for s in t.sections],
        "facts": {"name": "", "age": "", "sex": "", "chief_complaint": ""}, "warnings": []}
    for fmt in ("text", "md"):
        try:
            t.render({**sample, "fmt": fmt})
        except jinja2.TemplateError as exc:
            raise TemplateError(f"{t.source}: Jinja2 body fails to render: {exc}") from None


def load_file(path: str | Path) -> Template:
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{p}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    return parse(text, str(p))


def key_of(name: str) -> str:
    """Lookup key: case and punctuation do not matter ("H&P" = "h&p" = "HP")."""
    return "".join(c for c in name.lower() if c.isalnum())


class TemplateRegistry:
    """The built-in templates plus a clinic's folder; a clinic file with a built-in's name replaces it."""

    def __init__(self, folder: str = "") -> None:
        self.templates: dict[str, Template] = {}
        self.errors: list[str] = []
        builtin = resources.files("clinic.notes").joinpath("templates")
        for entry in sorted(builtin.iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".j2") and not entry.name.startswith("_"):
                self._add(parse(entry.read_text("utf-8"), f"built-in {entry.name}"))
        if folder and not Path(folder).is_dir():
            self.errors.append(f"{folder}: notes.templates_dir is not a folder; only the built-in templates are used")
            log.error("%s", self.errors[-1])
        elif folder:
            for path in sorted(Path(folder).glob("*.j2")):
                try:
                    self._add(load_file(path))
                except TemplateError as exc:
                    # One bad clinic file must not take the others (or the server) down.
                    log.error("template skipped: %s", exc)
                    self.errors.append(str(exc))

    def _add(self, t: Template) -> None:
        old = self.templates.get(key_of(t.name))
        if old is not None:
            log.info("template %s from %s replaces the one from %s", t.name, t.source, old.source)
        self.templates[key_of(t.name)] = t

    def get(self, name: str) -> Template | None:
        return self.templates.get(key_of(name))

    def names(self) -> list[str]:
        return [t.name for t in self.templates.values()]
