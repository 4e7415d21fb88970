"""What the model is asked. Its input is the built-in note's statements, each with the segment ids
it came from, written as short aliases (s1, s2, … by position in the transcript: real ids are
UUIDs, which a small model copies badly); the answer's aliases are mapped back after parsing."""

from __future__ import annotations

from dataclasses import dataclass

from clinic.notes.llm.client import Message
from clinic.notes.model import Statement, Transcript

FORMAT_RULES = (
    "Use only the facts given. Never add a number, drug, dose, test result or diagnosis that the facts do "
    "not contain.\n"
    "Write one sentence per line, starting with \"- \", and end every sentence with the ids of the facts "
    "it uses in square brackets, for example: - Denies fever and chills. [s3, s4]")
VOICE = {"clinician": "Write for a clinician: third person, concise clinical style.",
         "patient": "Write for the patient: second person (\"you\"), short sentences, plain everyday words."}


@dataclass(frozen=True)
class Aliases:
    """Segment id ↔ the short alias the model sees."""

    to_alias: dict[str, str]
    to_id: dict[str, str]

    @classmethod
    def of(cls, transcript: Transcript) -> Aliases:
        to_alias = {seg.id: f"s{i}" for i, seg in enumerate(transcript.segments, 1)}
        return cls(to_alias, {a: i for i, a in to_alias.items()})

    def cite(self, st: Statement) -> str:
        return "[" + ", ".join(self.to_alias.get(e, e) for e in st.evidence) + "] " + st.text


@dataclass(frozen=True)
class SectionPart:
    """Statements of one section (all of them, or one part of a long one) to be rewritten."""

    key: str
    title: str
    instruction: str
    statements: tuple[Statement, ...]
    part: int = 1
    parts: int = 1


def facts_block(part: SectionPart, aliases: Aliases) -> str:
    label = f"## {part.title}" + (f" (part {part.part} of {part.parts})" if part.parts > 1 else "")
    lines = [label, f"Instruction: {part.instruction}" if part.instruction else "", "Facts:"]
    lines += [aliases.cite(st) for st in part.statements]
    return "\n".join(line for line in lines if line)


def note_messages(template_name: str, audience: str, parts: list[SectionPart], aliases: Aliases) -> list[Message]:
    """One request for these sections: each answered under its own `## Title` heading."""
    one = len(parts) == 1
    layout = ("Write only the sentences of this section." if one else
              "Write each section under its heading, a line \"## <section title>\", in the order given.")
    system = (f"You are a medical scribe writing the {template_name} note of one clinic visit from facts taken "
              f"from its transcript. {VOICE.get(audience, VOICE['clinician'])}\n{FORMAT_RULES}\n{layout}")
    user = "\n\n".join(facts_block(p, aliases) for p in parts)
    return [Message("system", system), Message("user", user)]


ASSIST_TASKS = {
    "expand": "Rewrite the section \"{section}\" with more detail, using every relevant fact of the visit.",
    "differentials": "List differential diagnoses to consider for the assessment, one per line, each citing "
                     "the facts that support it. A suggestion no fact supports must still be marked with [].",
    "concise": "Rewrite {what} more concisely. Keep every medication, dose, vital sign, allergy and follow-up.",
    "patient": "Rewrite the note for the patient: second person (\"you\"), plain everyday words, short "
               "sentences.",
}


def assist_messages(command: str, section_title: str | None, note_text: str, visit_facts: str) -> list[Message]:
    what = f"the section \"{section_title}\"" if section_title else "the note"
    task = ASSIST_TASKS[command].format(section=section_title or "", what=what)
    system = f"You are a medical scribe helping a clinician with a note.\n{FORMAT_RULES}"
    user = f"{task}\n\nThe note:\n{note_text}\n\nFacts of the visit:\n{visit_facts}"
    return [Message("system", system), Message("user", user)]
