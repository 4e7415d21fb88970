"""An edit of a note in the web view: one text box per section, one sentence per line.

A line that is still one of the section's sentences keeps that sentence's evidence; a new or
changed line has none and is marked `edited` (the web view shows it without highlight, and the
reviewer knows the transcript does not back it). The text is written again by the note's template,
or with a heading per section when the template is gone (or fails on the edited note)."""

from __future__ import annotations

import copy
import logging
from typing import Any

from clinic.notes.templates import TemplateRegistry

log = logging.getLogger(__name__)


def section_lines(body: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(key, title, sentences one a line) of every section, for the edit form."""
    return [(s["key"], s["title"], "\n".join(x["text"] for x in s.get("sentences") or []))
            for s in body.get("sections") or []]


def edited_body(body: dict[str, Any], edits: dict[str, str]) -> dict[str, Any]:
    """The note body with each section's sentences replaced by the lines of `edits[key]`."""
    new = copy.deepcopy(body)
    for section in new.get("sections") or []:
        if section["key"] not in edits:
            continue
        known = {s["text"]: s for s in section.get("sentences") or []}
        lines = [" ".join(line.split()) for line in edits[section["key"]].splitlines()]
        section["sentences"] = [dict(known[line]) if line in known else
                                {"text": line, "evidence": [], "kind": "edited", "edited": True}
                                for line in lines if line]
    return new


def rendered_text(body: dict[str, Any], registry: TemplateRegistry) -> str:
    """The note's text from its (edited) body, as its template writes it."""
    template = registry.get(str(body.get("template", "")))
    sections = body.get("sections") or []
    if template is not None:
        try:
            return template.render({"fmt": "text", "template": template.name, "sections": sections,
                                    "facts": body.get("facts") or {}, "warnings": body.get("warnings") or []})
        except Exception:  # a clinic's template that fails on the edited note: the edit is not lost
            log.exception("template %s failed on an edited note; written with a heading per section", template.name)
    parts = [f"{s['title'].upper()}\n\n" + " ".join(x["text"] for x in s["sentences"])
             for s in sections if s.get("sentences")]
    return "\n\n".join(parts) + "\n"
