"""Immutable records handed out by the store; callers never see sqlite rows or mutable state."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from appliance.store.states import State


@dataclass(frozen=True)
class Session:
    """One visit. Carries no transcript text: that is only read through read_transcript()."""

    id: str
    name: str
    room: str
    clinician: str
    device_id: str
    site: str
    state: State
    interrupted: bool
    consent: bool
    templates: tuple[str, ...]
    created_at: float
    started_at: float | None
    ended_at: float | None
    updated_at: float
    recorded_seconds: float
    revision: int
    synced_at: float | None
    purged_at: float | None
    purge_reason: str = ""  # "retention", "discarded" (on the panel), "clinic"; "" while not purged

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Session:
        return cls(
            id=row["id"],
            name=row["name"],
            room=row["room"],
            clinician=row["clinician"],
            device_id=row["device_id"],
            site=row["site"],
            state=State(row["state"]),
            interrupted=bool(row["interrupted"]),
            consent=bool(row["consent"]),
            templates=tuple(json.loads(row["templates"])),
            created_at=row["created_at"],
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            updated_at=row["updated_at"],
            recorded_seconds=row["recorded_seconds"],
            revision=row["revision"],
            synced_at=row["synced_at"],
            purged_at=row["purged_at"],
            purge_reason=row.get("purge_reason") or "",
        )


@dataclass(frozen=True)
class Segment:
    """One utterance of the transcript, as of a given revision."""

    id: str
    session_id: str
    seq: int  # arrival order within the session; stable across edits
    start: float  # seconds from the start of recording
    end: float
    speaker: str  # label id, e.g. "S1"
    speaker_name: str  # display name of that label, e.g. "Clinician"
    text: str
    revision: int  # session revision that wrote this version
    deleted: bool
    created_at: float
    edited: bool = False  # a person wrote this version on Review (not as recognised)
    confidence: float | None = None  # the recogniser's, 0–1 (None: unknown, or edited by a person)
    word_confidence: tuple[float, ...] | None = None  # one per word of `text` (split on whitespace)
    speaker_uncertain: bool = False  # the labeller was unsure of `speaker`; no person has decided since

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Segment:
        return cls(
            id=row["id"],
            session_id=row["session_id"],
            seq=row["seq"],
            start=row["start"],
            end=row["end"],
            speaker=row["speaker"],
            speaker_name=row["speaker_name"] or row["speaker"],
            text=row["text"],
            revision=row["revision"],
            deleted=bool(row["deleted"]),
            created_at=row["created_at"],
            edited=bool(row.get("edited", 0)),
            confidence=row.get("confidence"),
            word_confidence=tuple(json.loads(row["word_confidence"])) if row.get("word_confidence") else None,
            speaker_uncertain=bool(row.get("speaker_uncertain", 0)),
        )


@dataclass(frozen=True)
class OutboxItem:
    """A request to deliver one revision of a session to the clinic."""

    id: int
    session_id: str
    revision: int
    created_at: float
    attempts: int
    next_attempt_at: float
    acked_at: float | None
    superseded: bool

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> OutboxItem:
        return cls(
            id=row["id"],
            session_id=row["session_id"],
            revision=row["revision"],
            created_at=row["created_at"],
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"],
            acked_at=row["acked_at"],
            superseded=bool(row["superseded"]),
        )


@dataclass(frozen=True)
class AuditEvent:
    """Who did what to which session. `detail` never holds transcript text or patient names."""

    id: int
    ts: float
    actor: str
    action: str
    session_id: str | None
    detail: dict[str, Any]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AuditEvent:
        return cls(
            id=row["id"],
            ts=row["ts"],
            actor=row["actor"],
            action=row["action"],
            session_id=row["session_id"],
            detail=json.loads(row["detail"]),
        )


@dataclass(frozen=True)
class Note:
    """A clinical note the clinic generated from one sent revision of a session, per template."""

    session_id: str
    revision: int
    template: str
    text: str
    received_at: float

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Note:
        return cls(
            session_id=row["session_id"],
            revision=row["revision"],
            template=row["template"],
            text=row["text"],
            received_at=row["received_at"],
        )
