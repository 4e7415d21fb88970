"""The built-in generator: offline, no LLM, milliseconds per note.

clean → drop non-content → statements with evidence (extract.py) → length budget → the template's
sections. The intro line and the chief complaint are the only lines not copied from a sentence,
and they are filled from facts read from the visit, with those segments as their evidence.
"""

from __future__ import annotations

import re

from clinic.notes import facts as facts_mod
from clinic.notes.extract import StatementBuilder
from clinic.notes.model import (
    NO_SPEECH_TEXT,
    STATUS_NO_SPEECH,
    STATUS_OK,
    Note,
    NoteSection,
    Statement,
    Transcript,
)
from clinic.notes.readability import flesch_kincaid_grade, plain_language
from clinic.notes.roles import assign_roles
from clinic.notes.templates import Template
from clinic.notes.text import clean, sentences, words

NAME = "builtin"
VERSION = "1.0"


def generate(transcript: Transcript, template: Template, clinician: str | None = None) -> Note:
    """`clinician`: a reviewer's choice of which speaker is the clinician (see roles.assign_roles)."""
    segments = tuple(s for s in transcript.segments if words(s.text))
    roles = assign_roles(segments, transcript.speakers, clinician)
    note = Note(template=template.name, generator=NAME, generator_version=VERSION, status=STATUS_OK,
                roles=list(roles.values()))
    if not segments:
        note.status, note.message = STATUS_NO_SPEECH, NO_SPEECH_TEXT
        return note
    cleaned = {s.id: clean(s.text) for s in segments}
    facts = facts_mod.extract(segments, roles, cleaned)
    note.facts = facts
    builder = StatementBuilder(roles, facts, template.audience)
    for i, seg in enumerate(segments):
        builder.add(seg, sentences(cleaned[seg.id]), float(i))
    wanted = {kind for sec in template.sections for kind in sec.takes}
    candidates = [s for s in _dedupe(builder.out) if s.kind in wanted]
    if template.audience == "patient":
        candidates = [_plain(s) for s in candidates]
    spoken = sum(len(s.text.split()) for s in segments)
    chosen = _within_budget(candidates, template.budget_for(spoken))
    if template.audience == "patient" and template.reading_grade_max is not None:
        chosen = _readable(chosen, template.reading_grade_max)
    note.sections = _assemble(template, chosen, facts)
    if not note.statements:
        # Speech, but nothing a note could say (greetings only): say so instead of inventing.
        note.status, note.message = STATUS_NO_SPEECH, "No clinical content recorded: the visit has speech but " \
                                                      "nothing for this template, so no note was written."
    if template.audience == "patient":
        note.reading_grade = flesch_kincaid_grade(" ".join(s.text for s in note.statements))
        if (template.reading_grade_max is not None and note.reading_grade is not None
                and note.reading_grade > template.reading_grade_max):
            note.warnings.append(f"reading grade {note.reading_grade} is above the template's "
                                 f"{template.reading_grade_max:g}")
    return note


def _dedupe(statements: list[Statement]) -> list[Statement]:
    seen: set[str] = set()
    out: list[Statement] = []
    for s in statements:
        key = re.sub(r"\W+", " ", s.text.lower()).strip()
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def _plain(s: Statement) -> Statement:
    return Statement(plain_language(s.text), s.evidence, s.kind, s.order, s.score, s.required)


def _within_budget(candidates: list[Statement], budget: int) -> list[Statement]:
    """Every required statement, then the best-scoring others while the budget lasts."""
    chosen = [s for s in candidates if s.required]
    used = sum(len(s.text.split()) for s in chosen)
    for s in sorted((s for s in candidates if not s.required), key=lambda s: -s.score):
        n = len(s.text.split())
        if used + n > budget:
            continue
        chosen.append(s)
        used += n
    return sorted(chosen, key=lambda s: s.order)


def _dictated_intro(chosen: list[Statement], facts: facts_mod.Facts) -> bool:
    """The clinician already said the intro ("Maria is a 45-year-old female who…"): keep their words."""
    if not facts.age:
        return False
    said = re.compile(rf"\b{facts.age}[- ]year[- ]old\b", re.I)
    return any(s.kind == "hpi" and said.search(s.text) for s in chosen)


def _readable(chosen: list[Statement], grade_max: float) -> list[Statement]:
    """Drop the longest optional sentences while the text reads above `grade_max` (required ones stay)."""
    kept = list(chosen)
    while (flesch_kincaid_grade(" ".join(s.text for s in kept)) or 0.0) > grade_max:
        optional = [s for s in kept if not s.required and len(s.text.split()) > 12]
        if not optional:
            break
        kept.remove(max(optional, key=lambda s: len(s.text.split())))
    return kept


def _assemble(template: Template, chosen: list[Statement], facts: facts_mod.Facts) -> list[NoteSection]:
    sections: list[NoteSection] = []
    placed: set[int] = set()
    for sec in template.sections:
        lines: list[Statement] = []
        if "chief_complaint" in sec.takes and facts.chief_complaint and not sec.intro:
            lines.append(Statement(facts.chief_complaint[:1].upper() + facts.chief_complaint[1:] + ".",
                                   facts.evidence, "chief_complaint", -1.0))
        if sec.intro and template.audience == "clinician" and not _dictated_intro(chosen, facts):
            intro = facts_mod.intro_line(facts)
            if intro:
                lines.append(Statement(intro, facts.evidence, "chief_complaint", -1.0))
        for i, s in enumerate(chosen):
            if s.kind in sec.takes and i not in placed:
                lines.append(s)
                placed.add(i)
        sections.append(NoteSection(sec.key, sec.title, [s for s in lines if s.evidence]))
    return sections
