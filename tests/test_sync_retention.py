"""Retention on the device: acknowledged transcripts are purged keep_days after the ack (injected clock)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from appliance.config.schema import RetentionConfig
from appliance.store import SessionStore, State
from appliance.sync.retention import DAY, RetentionPurger
from tests.broker import make_finished_sessions, wait_until
from tests.conftest import Clock

pytestmark = pytest.mark.slow  # a browser, a broker or a daemon process: make check leaves it to make test


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


_READER = """import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN")
conn.execute("SELECT count(*) FROM segments").fetchone()
print("reading", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
conn.close()
"""
# In another process: this one has the store open, and closing a descriptor of the database file
# would drop this process's SQLite locks.
_SCAN = """import sys
from pathlib import Path
data = b"".join(p.read_bytes() for p in (Path(sys.argv[1]), Path(sys.argv[1] + "-wal")) if p.exists())
print(sum(data.count(m.encode()) for m in sys.argv[2:]))
"""


def text_left_in_files(path: str, *markers: str) -> int:
    out = subprocess.run([sys.executable, "-c", _SCAN, path, *markers], capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_purge_held_back_by_a_reader_in_another_process_is_finished_when_it_leaves(
    store: SessionStore, clock: Clock
) -> None:
    [sid] = make_finished_sessions(store, 1, segments=6, name="Zebulon")
    store.mark_acked(store.outbox_items(sid)[0].id)
    store.checkpoint()  # the transcript is in the database file itself now
    markers = ("Zebulon 0000", "(Zebulon 0.3)", "(Zebulon 0.5)")
    assert text_left_in_files(store.path, *markers) > 0
    reader = subprocess.Popen([sys.executable, "-c", _READER, store.path], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    stop = threading.Event()
    purger = RetentionPurger(store, RetentionConfig(keep_days=7.0), clock=clock)
    worker = threading.Thread(target=purger.run, args=(stop,), daemon=True)
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "reading"
        clock.tick(8 * DAY)
        worker.start()
        wait_until(lambda: store.get_session(sid).state is State.PURGED, 20, "purged")
        # The reader's snapshot holds the checkpoint back: the old pages are still on disk.
        assert store.scrub_pending and text_left_in_files(store.path, *markers) > 0
        assert reader.stdin is not None
        reader.stdin.write("done\n")
        reader.stdin.flush()
        assert reader.wait(10) == 0
        wait_until(lambda: not store.scrub_pending, 20, "checkpoint retried after the reader left")
        assert text_left_in_files(store.path, *markers) == 0
        assert Path(f"{store.path}-wal").stat().st_size == 0  # TRUNCATE: nothing old left in the WAL
    finally:
        stop.set()
        reader.kill()
        worker.join(10)
