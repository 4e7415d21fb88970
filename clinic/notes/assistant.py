"""Assistant commands on a note: expand a section, add differentials, make concise, rewrite for the
patient. The LLM suggests; nothing is stored. Every suggested sentence goes through the same check
as the LLM generator's notes (verify.py). The web view and `clinic assist` both call `assist`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clinic.config import LlmConfig
from clinic.notes.llm.client import LlmUnavailable, chat, configured
from clinic.notes.llm.parse import parse
from clinic.notes.llm.prompts import Aliases, assist_messages
from clinic.notes.llm.verify import Verifier
from clinic.notes.model import STATUS_OK, Note, NoteSection, Transcript
from clinic.notes.text import clean

COMMANDS = ("expand", "differentials", "concise", "patient")
NO_LLM = "No LLM is configured: set [llm] url in the clinic config to use assistant commands."
_NEIGHBOURS = 2  # segments either side of a cited one that `expand` also shows the model


@dataclass
class AssistResult:
    ok: bool
    command: str
    section: str | None = None  # title of the section it is about; None: the whole note
    message: str = ""  # for the user when not ok (or when the answer is incomplete)
    sentences: list[dict[str, Any]] = field(default_factory=list)  # {text, evidence, flags}

    @property
    def text(self) -> str:
        return " ".join(s["text"] for s in self.sentences)


def assist(command: str, note: Note | dict[str, Any], transcript: Transcript, llm: LlmConfig, *,
           section: str | None = None) -> AssistResult:
    """Run one assistant command; never raises for a missing, dead or slow LLM (ok=False, message)."""
    if command not in COMMANDS:
        return AssistResult(False, command, message=f"Unknown command {command!r} (one of {', '.join(COMMANDS)}).")
    if not configured(llm):
        return AssistResult(False, command, message=NO_LLM)
    if isinstance(note, dict):
        note = Note.from_dict(note)
    if note.status != STATUS_OK or not note.statements:
        return AssistResult(False, command, message="The note has no content to work on.")
    target = _section(note, section)
    if section is not None and target is None:
        return AssistResult(False, command, message=f"The note has no section {section!r} "
                            f"(it has: {', '.join(s.title for s in note.sections)}).")
    if command == "expand" and target is None:
        return AssistResult(False, command, message="Expand needs a section (e.g. --section Assessment).")
    title = target.title if target else None
    aliases = Aliases.of(transcript)
    shown = [target] if target else [s for s in note.sections if s.statements]
    note_text = "\n\n".join(f"## {s.title}\n" + "\n".join(aliases.cite(st) for st in s.statements) for s in shown)
    try:
        reply = chat(llm, assist_messages(command, title, note_text, _visit(command, shown, transcript, aliases)))
    except LlmUnavailable as exc:
        return AssistResult(False, command, title, message=f"The LLM gave no answer: {exc}.")
    verifier = Verifier(transcript, aliases)
    parsed = parse(reply.text, [title or "Note"])
    drafted = parsed.unplaced + parsed.sections[title or "Note"]
    statements = [verifier.statement(d, "", float(i)) for i, d in enumerate(drafted)]
    result = AssistResult(True, command, title, sentences=[
        {"text": s.text, "evidence": list(s.evidence), "flags": list(s.flags)} for s in statements])
    if reply.finish_reason == "length":
        result.message = f"The answer was cut at max_tokens ({llm.max_tokens}); it is incomplete."
    elif not statements:
        result.message = "The LLM's answer had no sentences."
    return result


def _section(note: Note, name: str | None) -> NoteSection | None:
    if name is None:
        return None
    want = name.strip().casefold()
    return next((s for s in note.sections if want in (s.key.casefold(), s.title.casefold())), None)


def _visit(command: str, shown: list[NoteSection], transcript: Transcript, aliases: Aliases) -> str:
    """Transcript lines the model may draw on: for expand and differentials the cited segments and
    their neighbours (what was said around them); otherwise the cited segments only."""
    index = {seg.id: i for i, seg in enumerate(transcript.segments)}
    cited = {index[e] for s in shown for st in s.statements for e in st.evidence if e in index}
    spread = _NEIGHBOURS if command in ("expand", "differentials") else 0
    wanted = sorted({j for i in cited for j in range(i - spread, i + spread + 1)
                     if 0 <= j < len(transcript.segments)})
    segs = [transcript.segments[j] for j in wanted]
    return "\n".join(f"[{aliases.to_alias[s.id]}] {transcript.speakers.get(s.speaker, s.speaker)}: {clean(s.text)}"
                     for s in segs)
