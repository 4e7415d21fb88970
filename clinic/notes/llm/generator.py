"""The LLM generator: the built-in note, rewritten by a chat model section by section and checked.

built-in note → requests (the whole note, or per section, or a long section in parts) → parse →
verify every sentence against the segments it cites → a note whose unverified sentences are
flagged. Nothing is lost on the way: a part the model cut short, left out or could not place keeps
its built-in sentences (with a warning); a server that is down or slow gives the built-in note,
marked as a fallback."""

from __future__ import annotations

import logging

from clinic.config import LlmConfig
from clinic.notes import builtin
from clinic.notes.grounding import missing
from clinic.notes.llm.client import LlmUnavailable, chat, configured
from clinic.notes.llm.parse import parse
from clinic.notes.llm.prompts import Aliases, SectionPart, note_messages
from clinic.notes.llm.verify import Verifier
from clinic.notes.model import STATUS_OK, Note, NoteSection, Statement, Transcript
from clinic.notes.readability import flesch_kincaid_grade
from clinic.notes.templates import Template
from clinic.notes.text import digits

log = logging.getLogger(__name__)

NAME = "llm"
VERSION = "1.0"


def _words(statements: tuple[Statement, ...] | list[Statement]) -> int:
    return sum(len(s.text.split()) for s in statements)


def plan(note: Note, template: Template, part_words: int) -> list[list[SectionPart]]:
    """The requests to make: one for a note within `part_words`, else one per section, and a section
    longer than that in consecutive parts of whole statements (never cut, never dropped)."""
    instructions = {s.key: s.instruction for s in template.sections}
    sections = [s for s in note.sections if s.statements]
    whole = [SectionPart(s.key, s.title, instructions.get(s.key, ""), tuple(s.statements)) for s in sections]
    if _words(note.statements) <= part_words:
        return [whole] if whole else []
    requests: list[list[SectionPart]] = []
    for sec in sections:
        chunks: list[list[Statement]] = [[]]
        for st in sec.statements:
            if chunks[-1] and _words(chunks[-1]) + len(st.text.split()) > part_words:
                chunks.append([])
            chunks[-1].append(st)
        requests += [[SectionPart(sec.key, sec.title, instructions.get(sec.key, ""), tuple(c), i, len(chunks))]
                     for i, c in enumerate(chunks, 1)]
    return requests


def fallback(note: Note, reason: str) -> Note:
    """The built-in note, marked so a reviewer sees the LLM did not write it."""
    note.fallback = reason
    note.warnings.append(f"LLM fallback: {reason}; this is the built-in note")
    return note


def generate(transcript: Transcript, template: Template, cfg: LlmConfig) -> Note:
    base = builtin.generate(transcript, template)
    if base.status != STATUS_OK:
        return base  # no speech: nothing to ask a model about
    if not configured(cfg):
        return fallback(base, "no LLM is configured ([llm] url is empty)")
    aliases = Aliases.of(transcript)
    verifier = Verifier(transcript, aliases)
    written: dict[str, list[Statement]] = {s.key: [] for s in base.sections}
    warnings: list[str] = []
    model = ""
    try:
        for parts in plan(base, template, cfg.part_words):
            reply = chat(cfg, note_messages(template.name, template.audience, parts, aliases))
            model = model or reply.model.rsplit("/", 1)[-1]  # llama.cpp reports the file path
            where = ", ".join(p.title + (f" part {p.part}/{p.parts}" if p.parts > 1 else "") for p in parts)
            if reply.finish_reason == "length":
                warnings.append(f"the model's answer for {where} was cut at max_tokens ({cfg.max_tokens}); "
                                "the built-in sentences were kept")
                for p in parts:
                    written[p.key] += p.statements
                continue
            parsed = parse(reply.text, [p.title for p in parts])
            if parsed.unplaced:
                warnings.append(f"{len(parsed.unplaced)} sentence(s) written before any section heading were put "
                                f"under {parts[0].title}")
                parsed.sections[parts[0].title][:0] = parsed.unplaced
            for p in parts:
                drafted = parsed.sections[p.title]
                if not drafted:
                    warnings.append(f"the model wrote nothing for {p.title}"
                                    + (f" part {p.part}/{p.parts}" if p.parts > 1 else "")
                                    + "; the built-in sentences were kept")
                    written[p.key] += p.statements
                    continue
                kind = p.statements[0].kind
                start = len(written[p.key])
                written[p.key] += [verifier.statement(d, kind, float(start + i)) for i, d in enumerate(drafted)]
    except LlmUnavailable as exc:
        log.warning("LLM note for %s rev %d falls back to the built-in note: %s", transcript.session_id,
                    transcript.revision, exc)
        return fallback(base, str(exc))
    note = Note(template=base.template, generator=NAME, generator_version=f"{VERSION} {model}".strip()[:64],
                status=STATUS_OK, roles=base.roles, facts=base.facts, warnings=warnings,
                sections=[NoteSection(s.key, s.title, written[s.key]) for s in base.sections])
    note.warnings += _left_out(base, note)
    if template.audience == "patient":
        note.reading_grade = flesch_kincaid_grade(" ".join(s.text for s in note.statements))
    return note


def _left_out(base: Note, note: Note) -> list[str]:
    """Medications, doses, vitals, allergies and follow-up of the built-in note the model dropped."""
    written = digits(" ".join(s.text for s in note.statements)).lower()
    out = []
    for st in base.statements:
        if st.required:
            absent, _ = missing(st.text, written)
            out += [f"left out by the model: {item!r} (built-in: {st.text!r})" for item in absent]
    return out
