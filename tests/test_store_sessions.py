"""Sessions: creation, lookup, the lifecycle through the store, recovery, concurrency."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.store import (
    IllegalTransition,
    Session,
    SessionNotFound,
    SessionStore,
    State,
    open_store,
)
from tests.conftest import Clock
from tests.test_store_states import ILLEGAL


def new(store: SessionStore, name: str = "J.D.") -> Session:
    return store.create_session(name, "exam-3", "Dr Osei", "room-dev-3", "north", ["SOAP", "H&P"], False)


# Legal paths from idle to each state.
PATHS: dict[str, list[str]] = {
    "idle": [],
    "recording": ["recording"],
    "paused": ["recording", "paused"],
    "stopped": ["recording", "stopped"],
    "reviewed": ["recording", "stopped", "reviewed"],
    "queued": ["recording", "stopped", "queued"],
    "synced": ["recording", "stopped", "queued", "synced"],
    "purged": ["purged"],
}


def drive(store: SessionStore, session_id: str, state: str) -> None:
    for step in PATHS[state]:
        store.transition(session_id, step, "test")


def test_create_and_get(store: SessionStore, clock: Clock) -> None:
    s = new(store)
    assert s.state is State.IDLE
    assert (s.name, s.room, s.clinician) == ("J.D.", "exam-3", "Dr Osei")
    assert (s.device_id, s.site) == ("room-dev-3", "north")
    assert s.templates == ("SOAP", "H&P")
    assert s.revision == 1 and s.consent is False and s.interrupted is False
    assert s.created_at == s.updated_at == clock.now
    assert s.started_at is s.ended_at is s.synced_at is s.purged_at is None
    assert s.recorded_seconds == 0
    assert store.get_session(s.id) == s
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.name = "x"  # type: ignore[misc]


def test_unknown_session_names_the_id(store: SessionStore) -> None:
    with pytest.raises(SessionNotFound, match="no-such-id") as info:
        store.get_session("no-such-id")
    assert isinstance(info.value, KeyError) and isinstance(info.value, LookupError)
    for call in (
        lambda: store.transition("no-such-id", "recording", "t"),
        lambda: store.add_segment("no-such-id", 0, 1, "S1", "x"),
        lambda: store.read_transcript("no-such-id", "t", "r"),
        lambda: store.purge("no-such-id", "t"),
        lambda: store.set_consent("no-such-id", True, "t"),
    ):
        with pytest.raises(SessionNotFound):
            call()


def test_list_newest_first_and_by_state(store: SessionStore, clock: Clock) -> None:
    a = new(store, "A")
    clock.tick()
    b = new(store, "B")
    clock.tick()
    c = new(store, "C")
    store.transition(b.id, "recording", "t")
    assert [s.id for s in store.list_sessions()] == [c.id, b.id, a.id]
    assert [s.id for s in store.list_sessions(["recording"])] == [b.id]
    assert [s.id for s in store.list_sessions([State.IDLE])] == [c.id, a.id]
    assert store.list_sessions([]) == []


def test_lifecycle_timestamps_and_audit(store: SessionStore, clock: Clock) -> None:
    s = new(store)
    t_start = clock.tick()
    store.transition(s.id, "recording", "panel")
    clock.tick()
    store.transition(s.id, "paused", "button")
    clock.tick()
    store.transition(s.id, "recording", "button")  # resume keeps the first start time
    t_stop = clock.tick()
    store.transition(s.id, "stopped", "panel")
    store.transition(s.id, State.REVIEWED, "clinician")
    store.transition(s.id, "reviewed", "clinician")
    t_send = clock.tick()
    store.transition(s.id, "queued", "clinician")
    t_sync = clock.tick()
    done = store.transition(s.id, "synced", "sync")
    assert done.state is State.SYNCED
    assert (done.started_at, done.ended_at, done.synced_at) == (t_start, t_stop, t_sync)
    assert done.updated_at == t_sync
    actions = [(e.actor, e.action) for e in store.audit_events(s.id)]
    assert actions == [
        ("panel", "create"),
        ("panel", "state:idle->recording"),
        ("button", "state:recording->paused"),
        ("button", "state:paused->recording"),
        ("panel", "state:recording->stopped"),
        ("clinician", "state:stopped->reviewed"),
        ("clinician", "state:reviewed->reviewed"),
        ("clinician", "state:reviewed->queued"),
        ("sync", "state:queued->synced"),
    ]
    assert store.audit_events(s.id)[-2].ts == t_send


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SessionStore]:
    with open_store(str(tmp_path_factory.mktemp("illegal") / "s.db")) as s:
        yield s


@pytest.mark.parametrize(("current", "target"), ILLEGAL)
def test_every_illegal_transition_is_refused_by_the_store(
    shared_store: SessionStore, current: str, target: str
) -> None:
    s = new(shared_store)
    drive(shared_store, s.id, current)
    before = shared_store.get_session(s.id)
    events = len(shared_store.audit_events(s.id))
    with pytest.raises(IllegalTransition, match=f"session {s.id}: it is '{current}'"):
        shared_store.transition(s.id, target, "test")
    assert shared_store.get_session(s.id) == before
    assert len(shared_store.audit_events(s.id)) == events


def test_metadata_setters(store: SessionStore) -> None:
    s = new(store)
    # Before recording nothing has been captured: setup changes do not make revisions.
    s = store.set_consent(s.id, True, "clinician")
    s = store.set_name(s.id, "  K.L.  ", "clinician")
    assert (s.consent, s.name, s.revision) == (True, "K.L.", 1)
    drive(store, s.id, "stopped")
    s = store.set_templates(s.id, ["SOAP", "Patient Instructions", "SOAP", " custom: ortho "], "clinician")
    assert s.templates == ("SOAP", "Patient Instructions", "custom: ortho")
    assert s.revision == 2
    assert store.set_templates(s.id, list(s.templates), "clinician").revision == 2  # no change, no bump
    with pytest.raises(TypeError):
        store.set_templates(s.id, "SOAP", "clinician")
    with pytest.raises(ValueError):
        store.set_templates(s.id, ["SOAP", " "], "clinician")
    events = {e.action: e.detail for e in store.audit_events(s.id)}
    assert events["set:consent"] == {"consent": True}
    assert events["set:name"] == {}  # the patient identifier is never written to the audit trail
    assert events["set:templates"]["revision"] == 2


def test_recorded_seconds(store: SessionStore) -> None:
    s = new(store)
    drive(store, s.id, "recording")
    assert store.add_recorded_seconds(s.id, 1.5) == 1.5
    assert store.add_recorded_seconds(s.id, 2.0) == 3.5
    assert store.get_session(s.id).recorded_seconds == 3.5
    assert store.set_recorded_seconds(s.id, 10.25) == 10.25  # the daemon's periodic absolute update
    assert store.set_recorded_seconds(s.id, 10.25) == 10.25
    assert store.get_session(s.id).recorded_seconds == 10.25
    with pytest.raises(ValueError):
        store.add_recorded_seconds(s.id, -1)
    with pytest.raises(ValueError):
        store.set_recorded_seconds(s.id, -0.5)


def test_recover_interrupted(store: SessionStore) -> None:
    recording, paused, stopped, idle = new(store), new(store), new(store), new(store)
    drive(store, recording.id, "recording")
    drive(store, paused.id, "paused")
    drive(store, stopped.id, "stopped")
    assert sorted(store.recover_interrupted()) == sorted([recording.id, paused.id])
    for sid in (recording.id, paused.id):
        got = store.get_session(sid)
        assert got.state is State.PAUSED and got.interrupted
        assert store.audit_events(sid)[-1].action == "recover"
    assert store.audit_events(recording.id)[-1].detail == {"from": "recording", "to": "paused"}
    assert not store.get_session(stopped.id).interrupted
    assert store.get_session(idle.id).state is State.IDLE
    # A second daemon start finds them paused and interrupted already; they stay that way.
    assert sorted(store.recover_interrupted()) == sorted([recording.id, paused.id])
    assert store.get_session(recording.id).state is State.PAUSED
    # An interrupted session carries on normally; the flag stays as a record of the gap.
    store.transition(recording.id, "stopped", "panel")
    queued = store.transition(recording.id, "queued", "panel")
    assert queued.state is State.QUEUED and queued.interrupted


def test_threads_share_one_store(store: SessionStore) -> None:
    s = new(store)
    drive(store, s.id, "recording")
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(40):
                store.add_segment(s.id, n * 100 + i, n * 100 + i + 0.5, f"S{n}", f"thread {n} line {i}")
                store.get_session(s.id)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    segments = store.read_transcript(s.id, "test", "check")
    assert len(segments) == 160
    assert sorted(seg.seq for seg in segments) == list(range(1, 161))
    assert store.integrity_check() == ["ok"]


def test_second_connection_reads_while_the_first_writes(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    daemon, cli = open_store(path), open_store(path)
    s = new(daemon)
    drive(daemon, s.id, "recording")
    daemon.add_segment(s.id, 0, 1, "S1", "first")
    with daemon._tx():  # the daemon holds the write lock mid-transaction
        daemon.add_segment(s.id, 1, 2, "S1", "second")
        assert cli.get_session(s.id).state is State.RECORDING  # WAL: readers are not blocked
        assert cli.segment_count(s.id) == 1  # and see only committed data
    segments = cli.read_transcript(s.id, "cli:admin", "support ticket 12")
    assert [x.text for x in segments] == ["first", "second"]
    daemon.close()
    cli.close()
