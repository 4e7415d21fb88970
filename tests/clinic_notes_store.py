"""A clinic store holding one stored visit and its notes, written by the real generator (for the
export, review and web view tests)."""

from __future__ import annotations

from pathlib import Path

from clinic.notes.service import write_note
from clinic.notes.templates import TemplateRegistry
from clinic.notes.transcript import from_payload
from clinic.store import StoredNote, TranscriptStore
from tests.notes_visit import VISIT, payload

SESSION = "0190aaaa-0000-7000-8000-000000000001"


def clinic_config(tmp: Path, extra: str = "") -> Path:
    """A clinic.toml whose store is in `tmp`."""
    cfg = tmp / "clinic.toml"
    cfg.write_text(f'[store]\npath = "{tmp / "clinic.db"}"\n{extra}')
    return cfg


def store_visit(repo: TranscriptStore, templates: list[str], session_id: str = SESSION,
                visit: list[tuple[str, str]] = VISIT, started_at: float = 1.0e9, room: str = "exam-3",
                speakers: dict[str, str] | None = None) -> list[StoredNote]:
    """Store the visit as the ingest would, then one note per template as the note workers would."""
    p = payload(templates, session_id=session_id, visit=visit, speakers=speakers)
    p["started_at"], p["ended_at"], p["room"] = started_at, started_at + 600, room
    assert repo.store_many([p])[0].status == "stored"
    registry = TemplateRegistry("")
    notes = []
    for name in templates:
        note, text = write_note(from_payload(p), name, registry)
        notes.append(repo.add_note(session_id, 1, name, note.generator, note.generator_version, note.status,
                                   text, note.to_dict()))
    return notes
