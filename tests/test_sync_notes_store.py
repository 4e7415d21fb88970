"""Notes from the clinic in the session store: idempotent save, audited read, gone after purge."""

from __future__ import annotations

import pytest

from appliance.store import Note, SessionClosed, SessionNotFound, SessionStore
from tests.conftest import Clock


def _sent_session(store: SessionStore) -> str:
    s = store.create_session("Pat", "exam-1", "Dr A", "dev", "site", ["SOAP", "letter"], True)
    store.transition(s.id, "recording", "panel")
    store.add_segment(s.id, 0, 1, "S1", "hello there")
    store.transition(s.id, "stopped", "panel")
    store.mark_acked(store.enqueue(s.id, "panel").id)
    return s.id


def test_save_note_is_idempotent_per_revision_and_template(store: SessionStore, clock: Clock) -> None:
    sid = _sent_session(store)
    first = store.save_note(sid, 1, "SOAP", "S: cough")
    assert first == Note(sid, 1, "SOAP", "S: cough", clock.now)
    clock.tick(5)
    store.save_note(sid, 1, "SOAP", "S: cough, 3 days")  # re-delivered / regenerated
    store.save_note(sid, 1, "letter", "Dear colleague")
    notes = store.read_notes(sid, "panel", "review note")
    assert [(n.template, n.text, n.received_at) for n in notes] == [
        ("SOAP", "S: cough, 3 days", clock.now), ("letter", "Dear colleague", clock.now)]
    assert store.note_count(sid) == 2
    event = store.audit_events(sid)[-1]
    assert (event.actor, event.action, event.detail) == ("panel", "read:notes", {"reason": "review note", "notes": 2})
    saves = [e for e in store.audit_events(sid) if e.action == "note:save"]
    assert len(saves) == 3 and all("text" not in e.detail for e in saves)


def test_bad_notes_are_refused(store: SessionStore) -> None:
    sid = _sent_session(store)
    with pytest.raises(SessionNotFound):
        store.save_note("nope", 1, "SOAP", "x")
    with pytest.raises(ValueError, match="latest revision is 1"):
        store.save_note(sid, 2, "SOAP", "x")
    with pytest.raises(ValueError, match="template"):
        store.save_note(sid, 1, "  ", "x")
    with pytest.raises(ValueError, match="audited"):
        store.read_notes(sid, "", "why")
    assert store.note_count(sid) == 0


def test_purge_deletes_notes_and_refuses_late_ones(store: SessionStore) -> None:
    sid = _sent_session(store)
    store.save_note(sid, 1, "SOAP", "Quixotic note text")
    store.purge(sid, "retention")
    assert store._db.execute("SELECT COUNT(*) FROM notes").fetchone()[0] == 0
    assert store.audit_events(sid)[-1].detail["note_rows"] == 1
    with pytest.raises(SessionClosed):
        store.save_note(sid, 1, "SOAP", "late")
    assert store.read_notes(sid, "panel", "after purge") == []
