"""A note as text (for pasting into an EHR), Markdown, or JSON with every sentence's evidence."""

from __future__ import annotations

import json
from typing import Any

from clinic.notes.model import STATUS_OK, Note
from clinic.notes.templates import Template

FORMATS = ("text", "md", "json")


def context(note: Note, fmt: str) -> dict[str, Any]:
    d = note.to_dict()
    return {"fmt": fmt, "template": note.template, "sections": d["sections"], "facts": d["facts"],
            "warnings": note.warnings}


def render(note: Note, template: Template | None, fmt: str = "text") -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    if fmt == "json":
        return json.dumps({**note.to_dict(), "text": render(note, template, "text")}, indent=2,
                          ensure_ascii=False) + "\n"
    if note.status != STATUS_OK or template is None:
        return note.message + "\n"
    return template.render(context(note, fmt)) + review_block(note)


def review_block(note: Note) -> str:
    """What a reviewer must check before signing: sentences the LLM wrote that failed the grounding
    check, and the fallback mark. Empty for a note with neither (every built-in note)."""
    flagged = [s for s in note.statements if s.flags]
    lines = [f"Written by the built-in generator: {note.fallback}."] if note.fallback else []
    lines += [f"- {s.text} ({'; '.join(s.flags)})" for s in flagged]
    if not lines:
        return ""
    return "\nCHECK BEFORE SIGNING\n" + "\n".join(lines) + "\n"
