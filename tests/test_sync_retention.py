"""Retention on the device: acknowledged transcripts are purged keep_days after the ack (injected clock)."""

from __future__ import annotations

import json
from pathlib import Path

from appliance.config.schema import RetentionConfig
from appliance.store import SessionStore, State
from appliance.sync.retention import DAY, RetentionPurger
from tests.broker import make_finished_sessions
from tests.conftest import Clock


def file_bytes(path: str) -> bytes:
    return b"".join(p.read_bytes() for p in (Path(path), Path(f"{path}-wal")) if p.exists())


def test_acknowledged_transcripts_are_purged_after_keep_days(store: SessionStore, clock: Clock) -> None:
    purger = RetentionPurger(store, RetentionConfig(keep_days=7.0), clock=clock)
    old, young, unsent = (make_finished_sessions(store, 1, segments=4, name=n)[0] for n in ("Old", "Young", "Kept"))
    for sid in (old, young):
        store.mark_acked(store.outbox_items(sid)[0].id)
        store.save_note(sid, 1, "SOAP", "Quixotryptase note")
        clock.tick(3 * DAY)
    assert purger.run_once() == []  # old was acked 6 days ago
    clock.tick(DAY + 1)
    assert purger.run_once() == [old]
    clock.tick(30 * DAY)
    assert purger.run_once() == [young]
    assert store.get_session(unsent).state is State.QUEUED  # never acked: kept however old
    for sid in (old, young):
        s = store.get_session(sid)
        assert s.state is State.PURGED and s.name == "" and s.clinician == ""
        for table in ("segments", "speakers", "notes", "outbox"):
            n = store._db.execute(f"SELECT COUNT(*) FROM {table} WHERE session_id = ?", [sid]).fetchone()[0]
            assert n == 0, table
        event = store.audit_events(sid)[-1]
        assert (event.actor, event.action) == ("retention", "state:synced->purged")
        assert event.detail == {"segment_rows": 4, "note_rows": 1, "outbox_rows": 1, "reason": "retention"}
        assert "Patient" not in json.dumps(event.detail)
    store.checkpoint()
    data = file_bytes(store.path)
    assert b"Quixotryptase" not in data  # secure_delete: notes gone from the bytes too
    for gone in (b"Old 0000", b"Young 0000", b"(Old 0.3)", b"(Young 0.1)"):  # names and transcript text
        assert gone not in data, gone
    assert b"Kept 0000" in data and b"(Kept 0.3)" in data  # the unsent session is intact


def test_edited_after_ack_is_not_purged_until_its_new_revision_is_acked(store: SessionStore, clock: Clock) -> None:
    purger = RetentionPurger(store, RetentionConfig(keep_days=1.0), clock=clock)
    [sid] = make_finished_sessions(store, 1, segments=2)
    store.mark_acked(store.outbox_items(sid)[0].id)
    seg = store.read_transcript(sid, "clinician", "review")[0]
    store.edit_segment_text(sid, seg.id, "changed after sending", "clinician")
    store.enqueue(sid, "clinician")  # revision 2 queued: not synced any more
    clock.tick(10 * DAY)
    assert purger.run_once() == []
    store.mark_acked(store.outbox_items(sid)[-1].id)
    clock.tick(DAY + 1)
    assert purger.run_once() == [sid]


def test_an_edit_after_the_ack_queues_the_correction_and_retention_keeps_it(store: SessionStore, clock: Clock) -> None:
    purger = RetentionPurger(store, RetentionConfig(keep_days=1.0), clock=clock)
    [sid] = make_finished_sessions(store, 1, segments=2)
    store.mark_acked(store.outbox_items(sid)[0].id)
    seg = store.read_transcript(sid, "clinician", "review")[0]
    store.edit_segment_text(sid, seg.id, "corrected after it was sent", "clinician")  # no Send pressed
    session = store.get_session(sid)
    assert (session.state, session.revision) == (State.QUEUED, 2)
    assert [(i.revision, i.acked_at is None) for i in store.outbox_items(sid)] == [(1, False), (2, True)]
    store.set_speaker_name(sid, "S1", "Dr Osei", "clinician")  # a second edit: revision 3 replaces 2
    assert [i.revision for i in store.next_due(clock() + 1)] == [3]
    clock.tick(10 * DAY)
    assert purger.run_once() == []  # the correction never reached the clinic: kept
    store.mark_acked_many([(sid, 3)])
    assert store.get_session(sid).state is State.SYNCED
    clock.tick(DAY - 1)
    assert purger.run_once() == []  # retention counts from the new ack
    clock.tick(2)
    assert purger.run_once() == [sid]


def test_synced_visit_with_an_unsent_edit_from_an_older_version_is_not_purged(
    store: SessionStore, clock: Clock
) -> None:
    """A store written before edits were queued: synced, yet its latest revision never acknowledged."""
    purger = RetentionPurger(store, RetentionConfig(keep_days=1.0), clock=clock)
    [sid] = make_finished_sessions(store, 1, segments=2)
    store.mark_acked(store.outbox_items(sid)[0].id)
    with store.batch():
        store._db.execute("UPDATE sessions SET revision = 2 WHERE id = ?", [sid])  # as the old edit left it
    clock.tick(10 * DAY)
    assert purger.run_once() == []
    assert store.requeue_unsent_edits("sync") == [sid]  # the sync does this at start
    assert [i.revision for i in store.next_due(clock())] == [2]


def test_zero_keep_days_purges_at_the_next_check(store: SessionStore, clock: Clock) -> None:
    purger = RetentionPurger(store, RetentionConfig(keep_days=0.0), clock=clock)
    [sid] = make_finished_sessions(store, 1, segments=2)
    store.mark_acked(store.outbox_items(sid)[0].id)
    assert purger.run_once() == [sid]
