"""What every export is made from: one note version with what the reader needs around it (whose
visit, which room, when, signed or not). Built from a stored note, or from a freshly generated one
(`clinic generate`), so the three formats never read the database themselves."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from clinic.notes.model import STATUS_OK

if TYPE_CHECKING:
    from clinic.notes.model import Note
    from clinic.store import StoredNote


class ExportError(ValueError):
    """A note that cannot be exported in the asked format; the message says why."""


@dataclass(frozen=True)
class ExportSection:
    key: str
    title: str
    sentences: tuple[str, ...]


@dataclass(frozen=True)
class ExportNote:
    template: str
    status: str  # ok | no_speech | error (the generator's result, not the signature)
    text: str  # the note as its template rendered it (what is pasted into an EHR)
    sections: tuple[ExportSection, ...]
    generator: str = ""
    generator_version: str = ""
    note_id: int | None = None
    session_id: str = ""
    revision: int = 0
    visit_name: str = ""  # what the clinician typed on the panel for the visit (often the patient's initials)
    clinician: str = ""
    room: str = ""
    started_at: float | None = None
    created_at: float = field(default_factory=time.time)
    signed_by: str = ""
    signed_at: float | None = None
    edited_by: str = ""

    @property
    def signed(self) -> bool:
        return self.signed_at is not None

    @property
    def has_content(self) -> bool:
        return self.status == STATUS_OK and any(s.sentences for s in self.sections)


def sections_of(body: dict[str, Any]) -> tuple[ExportSection, ...]:
    """The sections of a note's JSON body (Note.to_dict()), keeping only those with sentences."""
    out = []
    for s in body.get("sections") or []:
        sentences = tuple(str(x.get("text", "")).strip() for x in s.get("sentences") or [])
        sentences = tuple(x for x in sentences if x)
        if sentences:
            out.append(ExportSection(str(s.get("key", "")), str(s.get("title", "")), sentences))
    return tuple(out)


def iso(ts: float) -> str:
    """FHIR dateTime: seconds, UTC."""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def when(ts: float | None) -> str:
    """A time as a reader wants it on paper: local time, to the minute."""
    return "" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def header_line(doc: ExportNote) -> str:
    parts = [doc.template, doc.visit_name, doc.room, when(doc.started_at)]
    return " · ".join(p for p in parts if p)


def signature_line(doc: ExportNote) -> str:
    if doc.signed:
        return f"Signed by {doc.signed_by} on {when(doc.signed_at)}."
    return "PRELIMINARY: not signed."


def from_generated(note: Note, text: str, payload_meta: dict[str, Any] | None = None) -> ExportNote:
    """A note just written by a generator (`clinic generate`): not stored, so not signed."""
    meta = payload_meta or {}
    return ExportNote(template=note.template, status=note.status, text=text,
                      sections=sections_of(note.to_dict()), generator=note.generator,
                      generator_version=note.generator_version, session_id=str(meta.get("session_id", "")),
                      revision=int(meta.get("revision") or 0), visit_name=str(meta.get("name", "")),
                      clinician=str(meta.get("clinician", "")), room=str(meta.get("room", "")),
                      started_at=meta.get("started_at"))


def from_stored(note: StoredNote, meta: dict[str, Any] | None) -> ExportNote:
    """A stored note version; `meta` is its session's who/where/when (`session_meta`)."""
    meta = meta or {}
    return ExportNote(template=note.template, status=note.status, text=note.text, sections=sections_of(note.body),
                      generator=note.generator, generator_version=note.generator_version, note_id=note.id,
                      session_id=note.session_id, revision=note.revision, visit_name=str(meta.get("name", "")),
                      clinician=str(meta.get("clinician", "")), room=str(meta.get("room", "")),
                      started_at=meta.get("started_at"), created_at=note.created_at, signed_by=note.signed_by,
                      signed_at=note.signed_at, edited_by=note.edited_by)
