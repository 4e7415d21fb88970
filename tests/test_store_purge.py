"""Purge: the transcript is gone from the tables and from the bytes of the file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.store import IllegalTransition, SessionStore, State, open_store
from tests.conftest import Clock

WORD = "Quixotryptase"  # distinctive transcript word
PATIENT = "ZQX-4471"  # distinctive patient identifier
DOCTOR = "Dr Vellacourt"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "sessions.db"


@pytest.fixture
def store(path: Path, clock: Clock) -> Iterator[SessionStore]:
    with open_store(str(path), clock=clock) as s:
        yield s


def file_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def test_purge_erases_content_but_keeps_tombstone_and_audit(store: SessionStore, clock: Clock) -> None:
    s = store.create_session(PATIENT, "exam-1", DOCTOR, "dev", "site", ["SOAP"], True)
    store.transition(s.id, "recording", "panel")
    seg = store.add_segment(s.id, 0, 1, "S1", f"{WORD} level")
    store.transition(s.id, "stopped", "panel")
    store.edit_segment_text(s.id, seg, "tryptase level", "clinician")
    store.set_speaker_name(s.id, "S1", "Patient", "clinician")
    item = store.enqueue(s.id, "clinician")
    store.mark_acked(item.id)
    clock.now += 86400
    purged = store.purge(s.id, "retention")
    assert purged.state is State.PURGED and purged.purged_at == clock.now
    assert (purged.name, purged.clinician) == ("", "")
    assert purged.templates == ("SOAP",) and purged.room == "exam-1"
    for table in ("segments", "speakers", "notes", "outbox"):
        assert store._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0, table
    event = store.audit_events(s.id)[-1]
    assert (event.actor, event.action) == ("retention", "state:synced->purged")
    assert event.detail == {"segment_rows": 2, "note_rows": 0, "outbox_rows": 1, "reason": "retention"}
    assert len(store.audit_events(s.id)) > 5  # history of who did what survives
    assert store.list_sessions(["purged"]) == [purged]


def test_purge_needs_a_finished_session(store: SessionStore) -> None:
    s = store.create_session("A", "exam-1", "Dr", "dev", "site")
    store.transition(s.id, "recording", "panel")
    store.add_segment(s.id, 0, 1, "S1", "words")
    with pytest.raises(IllegalTransition, match="cannot purge"):
        store.purge(s.id, "clinician")
    assert store.segment_count(s.id) == 1
    store.transition(s.id, "stopped", "panel")
    store.transition(s.id, "queued", "panel")
    with pytest.raises(IllegalTransition):  # not until the clinic has it
        store.purge(s.id, "clinician")


def test_discard_via_transition_purges_too(store: SessionStore) -> None:
    s = store.create_session(PATIENT, "exam-1", DOCTOR, "dev", "site")
    store.transition(s.id, "recording", "panel")
    store.add_segment(s.id, 0, 1, "S1", "words")
    store.transition(s.id, "stopped", "panel")
    assert store.transition(s.id, "purged", "clinician").name == ""
    assert store._db.execute("SELECT COUNT(*) FROM segments").fetchone()[0] == 0


def test_purgeable_after_retention(store: SessionStore, clock: Clock) -> None:
    done = []
    for _ in range(2):
        s = store.create_session("A", "exam-1", "Dr", "dev", "site")
        store.transition(s.id, "recording", "p")
        store.transition(s.id, "stopped", "p")
        store.mark_acked(store.enqueue(s.id, "p").id)
        done.append(s.id)
        clock.now += 3600
    pending = store.create_session("B", "exam-1", "Dr", "dev", "site")
    assert store.purgeable(clock.now - 3600) == done
    assert store.purgeable(clock.now - 7200) == done[:1]
    assert pending.id not in store.purgeable(clock.now)


@pytest.mark.slow
def test_purged_words_are_not_left_anywhere_in_the_file(store: SessionStore, path: Path) -> None:
    """secure_delete + checkpoint: no copy of the purged text in the database or WAL bytes, even
    after edits created several versions and another session's rows share the same pages."""
    secret = store.create_session(PATIENT, "exam-1", DOCTOR, "dev", "site")
    kept = store.create_session("K.E.", "exam-1", "Dr Keep", "dev", "site")
    for s in (secret, kept):
        store.transition(s.id, "recording", "panel")
    ids = []
    for i in range(300):  # interleaved, enough rows to split and rebalance b-tree pages
        text = f"{WORD} reading {i} " + "x" * (i % 97)
        ids.append(store.add_segment(secret.id, i, i + 0.5, f"S{i % 2 + 1}", text))
        store.add_segment(kept.id, i, i + 0.5, "S1", f"keepable line {i} " + "y" * (i % 89))
    for s in (secret, kept):
        store.transition(s.id, "stopped", "panel")
    for seg in ids[::5]:
        store.edit_segment_text(secret.id, seg, f"corrected {WORD} {seg}", "clinician")
    store.swap_speakers(secret.id, "S1", "S2", "clinician")
    store.set_speaker_name(secret.id, "S1", f"Mr {WORD}", "clinician")
    store.read_transcript(secret.id, "clinician", "review")
    store.checkpoint()
    assert WORD.encode() in file_bytes(path)  # sanity: the scan would see it

    store.purge(secret.id, "clinician")
    store.checkpoint()
    data = file_bytes(path)
    for needle in (WORD, PATIENT, DOCTOR):
        assert needle.encode() not in data, needle
        assert needle.encode("utf-16-le") not in data, needle
    assert b"keepable line 299" in data  # the other session is intact
    assert len(store.read_transcript(kept.id, "t", "r")) == 300
    assert store.integrity_check() == ["ok"]
    for event in store.audit_events():
        assert WORD not in json.dumps(event.detail)
