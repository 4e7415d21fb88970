"""What a note is made of: transcript segments in, statements with their evidence out."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

CLINICIAN, PATIENT, OTHER = "clinician", "patient", "other"

# Where a statement can go; a template's section lists the kinds it takes.
KINDS = ("chief_complaint", "hpi", "ros", "history", "medications", "allergies", "vitals", "exam", "results",
         "assessment", "plan", "follow_up")

STATUS_OK, STATUS_NO_SPEECH, STATUS_ERROR = "ok", "no_speech", "error"
NO_SPEECH_TEXT = "No speech recorded: the transcript has no words, so no note was written."


@dataclass(frozen=True)
class Segment:
    id: str
    start: float
    end: float
    speaker: str  # label as sent ("S1") or a display name
    text: str


@dataclass(frozen=True)
class SpeakerRole:
    label: str
    name: str  # display name from the device ("Clinician", "Speaker 2", …)
    role: str  # clinician | patient | other
    guessed: bool  # True when inferred from what was said, not named on the device
    set_by_reviewer: bool = False  # a person chose this speaker as the clinician (`clinician=` override)


@dataclass(frozen=True)
class Transcript:
    segments: tuple[Segment, ...]
    speakers: dict[str, str] = field(default_factory=dict)  # label → display name
    name: str = ""  # visit name typed on the panel
    session_id: str = ""
    revision: int = 0
    templates: tuple[str, ...] = ()


@dataclass(frozen=True)
class Statement:
    text: str
    evidence: tuple[str, ...]  # ids of the segments the sentence came from (empty only on a flagged LLM sentence)
    kind: str
    order: float = 0.0  # position in the visit, for ordering within a section
    score: float = 0.0  # selection priority under the length budget
    required: bool = False  # medication, dose, vital sign, allergy, follow-up: always kept
    flags: tuple[str, ...] = ()  # why an LLM sentence is unverified (unknown id, a number not in its segments)


@dataclass(frozen=True)
class Facts:
    """Who the visit is about, each with the segments it was read from."""

    name: str = ""
    age: str = ""
    sex: str = ""  # "male" | "female" | ""
    chief_complaint: str = ""
    evidence: tuple[str, ...] = ()

    @property
    def pronoun(self) -> tuple[str, str, str]:
        """Subject, object, possessive."""
        return {"male": ("he", "him", "his"), "female": ("she", "her", "her")}.get(self.sex, ("the patient",
                                                                                               "the patient",
                                                                                               "the patient's"))


@dataclass
class NoteSection:
    key: str
    title: str
    statements: list[Statement]


@dataclass
class Note:
    template: str
    generator: str
    generator_version: str
    status: str  # ok | no_speech | error
    sections: list[NoteSection] = field(default_factory=list)
    message: str = ""  # the text of a no-speech or error result
    roles: list[SpeakerRole] = field(default_factory=list)
    facts: Facts = field(default_factory=Facts)
    reading_grade: float | None = None
    warnings: list[str] = field(default_factory=list)
    fallback: str = ""  # why the LLM generator gave the built-in note instead ("" when it did not)

    @property
    def statements(self) -> list[Statement]:
        return [s for sec in self.sections for s in sec.statements]

    def evidence(self) -> list[dict[str, Any]]:
        """One entry per sentence: its text and the segment ids it came from (what the device gets)."""
        return [{"text": s.text, "segments": list(s.evidence)} for s in self.statements]

    def to_dict(self) -> dict[str, Any]:
        return {
            "template": self.template, "generator": {"name": self.generator, "version": self.generator_version},
            "status": self.status, "message": self.message,
            "facts": asdict(self.facts),
            "roles": [asdict(r) for r in self.roles],
            "reading_grade": self.reading_grade, "warnings": self.warnings,
            "sections": [{"key": s.key, "title": s.title,
                          "sentences": [{"text": st.text, "evidence": list(st.evidence), "kind": st.kind}
                                        | ({"flags": list(st.flags)} if st.flags else {})
                                        for st in s.statements]} for s in self.sections],
        } | ({"fallback": self.fallback} if self.fallback else {})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Note:
        """A note back from its JSON body (StoredNote.body), e.g. for assistant commands."""
        return cls(
            template=d["template"], generator=d["generator"]["name"], generator_version=d["generator"]["version"],
            status=d["status"], message=d.get("message", ""), facts=Facts(**_facts_fields(d.get("facts", {}))),
            roles=[SpeakerRole(**r) for r in d.get("roles", [])], reading_grade=d.get("reading_grade"),
            warnings=list(d.get("warnings", [])), fallback=d.get("fallback", ""),
            sections=[NoteSection(s["key"], s["title"], [
                Statement(st["text"], tuple(st["evidence"]), st.get("kind", ""), float(i),
                          flags=tuple(st.get("flags", ()))) for i, st in enumerate(s["sentences"])])
                for s in d.get("sections", [])])


def _facts_fields(facts: dict[str, Any]) -> dict[str, Any]:
    """Facts' fields from JSON: evidence back to a tuple (JSON has only lists)."""
    return {k: tuple(v) if k == "evidence" else v for k, v in facts.items()}
