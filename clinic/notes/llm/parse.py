"""The model's answer → sentences with the ids they cite, under the section headings asked for.

Small models drift from the format, so this is lenient about the layout (`## Title`, `Title:`,
`**Title**`, bullets or numbers, citations anywhere in the line) and strict about nothing else:
what the model cited is kept as written and judged by verify.py."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_CITATION = re.compile(r"\[([^\[\]]{0,200})\]")
_BULLET = re.compile(r"^\s*(?:[-*•]+|\d{1,3}[.)])\s+")
_HEADING_MARKS = re.compile(r"^[\s#*=_]+|[\s#*=_:]+$")
_PART = re.compile(r"\s*\(part \d+ of \d+\)\s*$", re.I)
_ECHO = re.compile(r"^\s*(?:instruction|facts)\s*:", re.I)  # the prompt's own labels repeated back
_IDS = re.compile(r"[,;\s]+|\band\b")


@dataclass(frozen=True)
class Drafted:
    text: str
    cited: tuple[str, ...]  # ids/aliases as the model wrote them


@dataclass
class Parsed:
    sections: dict[str, list[Drafted]] = field(default_factory=dict)  # section title → its sentences
    unplaced: list[Drafted] = field(default_factory=list)  # sentences before any heading


def _norm(title: str) -> str:
    return re.sub(r"\W+", " ", _PART.sub("", title)).strip().casefold()


def _heading(line: str, titles: dict[str, str]) -> tuple[str | None, str]:
    """(section title, rest of the line) when the line opens a section, else (None, line)."""
    bare = _HEADING_MARKS.sub("", line)
    if _norm(bare) in titles:
        return titles[_norm(bare)], ""
    head, sep, rest = line.partition(":")  # "Assessment: Likely viral bronchitis. [s9]"
    if sep and _norm(_HEADING_MARKS.sub("", head)) in titles:
        return titles[_norm(_HEADING_MARKS.sub("", head))], rest.strip()
    return None, line


def sentence(line: str) -> Drafted | None:
    """One answer line → its text without citations, and what it cites; None when nothing is left."""
    cited: list[str] = []
    for m in _CITATION.finditer(line):
        cited += [t for t in _IDS.split(m.group(1)) if t and t.strip()]
    text = _BULLET.sub("", _CITATION.sub("", line))
    text = re.sub(r"\s+([.,;:!?])", r"\1", re.sub(r"\s{2,}", " ", text)).strip()
    if not re.search(r"\w", text) or (not cited and text.endswith(":")):
        return None  # nothing left, or a label such as "Here is the note:"
    return Drafted(text, tuple(dict.fromkeys(t.strip() for t in cited)))


def parse(answer: str, titles: list[str]) -> Parsed:
    """With one title every sentence belongs to it; with several a heading line switches section."""
    known = {_norm(t): t for t in titles}
    out = Parsed({t: [] for t in titles})
    current: str | None = titles[0] if len(titles) == 1 else None
    for raw in answer.splitlines():
        if not raw.strip() or _ECHO.match(raw):
            continue
        title, rest = _heading(raw, known)
        if title is not None:
            current = title
            if not rest:
                continue
        elif raw.lstrip().startswith("#"):
            continue  # a heading the template does not have ("## Patient's Story"): layout, not content
        drafted = sentence(rest)
        if drafted is None:
            continue
        (out.sections[current] if current is not None else out.unplaced).append(drafted)
    return out
