"""Transcript segments: appending, audited reads, and versioned review edits."""

from __future__ import annotations

import json

import pytest

from appliance.store import (
    SegmentNotFound,
    SessionClosed,
    SessionStore,
    State,
)

SECRET = "hyperkalaemia"  # a word that must never reach the audit trail


@pytest.fixture
def recording(store: SessionStore) -> str:
    s = store.create_session("P.Q.", "exam-1", "Dr Lind", "dev-1", "west", ["SOAP"])
    store.transition(s.id, "recording", "panel")
    return s.id


def texts(store: SessionStore, sid: str, **kw: int) -> list[tuple[str, str]]:
    return [(seg.speaker, seg.text) for seg in store.read_transcript(sid, "test", "check", **kw)]


def assert_audit_has_no_text(store: SessionStore) -> None:
    for event in store.audit_events():
        assert SECRET not in json.dumps(event.detail) + event.action


def test_add_and_read_in_start_order(store: SessionStore, recording: str) -> None:
    late = store.add_segment(recording, 5.0, 6.0, "S2", "second utterance")
    early = store.add_segment(recording, 1.0, 2.5, "S1", f"first, {SECRET}")
    segs = store.read_transcript(recording, "clinician:panel", "live view")
    assert [s.id for s in segs] == [early, late]  # by start time, not arrival
    assert [s.seq for s in segs] == [2, 1]
    first = segs[0]
    assert (first.start, first.end, first.speaker, first.speaker_name) == (1.0, 2.5, "S1", "Speaker 1")
    assert first.revision == 1 and not first.deleted and first.session_id == recording
    assert late < early  # uuid7: made later, sorts later
    event = store.audit_events(recording)[-1]
    assert (event.actor, event.action) == ("clinician:panel", "read")
    assert event.detail == {"reason": "live view", "revision": 1, "segments": 2}
    assert store.speakers(recording) == {"S1": "Speaker 1", "S2": "Speaker 2"}
    assert_audit_has_no_text(store)


def test_segment_validation(store: SessionStore, recording: str) -> None:
    with pytest.raises(ValueError, match="times"):
        store.add_segment(recording, 2, 1, "S1", "backwards")
    # recognition failed / no recognizer: timing kept with empty text; speaker not yet assigned
    gap = store.add_segment(recording, 0, 1, "", "   ")
    [seg] = [g for g in store.read_transcript(recording, "panel", "check") if g.id == gap]
    assert (seg.text, seg.speaker) == ("", "")
    assert "" not in store.speakers(recording)
    with pytest.raises(ValueError, match="empty"):
        store.edit_segment_text(recording, gap, "  ", "panel")
    with pytest.raises(ValueError, match="reason"):
        store.read_transcript(recording, "panel", "")


def test_append_only_while_capturing_or_just_stopped(store: SessionStore) -> None:
    s = store.create_session("X", "exam-1", "Dr", "dev", "site")
    with pytest.raises(SessionClosed, match="'idle'"):
        store.add_segment(s.id, 0, 1, "S1", "too early")
    store.transition(s.id, "recording", "t")
    store.transition(s.id, "paused", "t")
    store.add_segment(s.id, 0, 1, "S1", "utterance in flight at pause")
    store.transition(s.id, "stopped", "t")
    store.add_segment(s.id, 1, 2, "S1", "utterance in flight at stop")
    store.transition(s.id, "reviewed", "t")
    with pytest.raises(SessionClosed, match="'reviewed'"):
        store.add_segment(s.id, 2, 3, "S1", "too late")
    assert store.segment_count(s.id) == 2


def test_edits_keep_history_and_bump_once_per_action(store: SessionStore, recording: str) -> None:
    a = store.add_segment(recording, 0, 1, "S1", f"patient has {SECRET}")
    b = store.add_segment(recording, 1, 2, "S2", "since tuesday")
    c = store.add_segment(recording, 2, 3, "S1", "uh um")
    store.transition(recording, "stopped", "panel")

    assert store.edit_segment_text(recording, a, "patient has hypokalaemia", "clinician") == 2
    assert store.set_segment_speaker(recording, b, "S1", "clinician") == 3
    assert store.delete_segment(recording, c, "clinician") == 4
    assert store.get_session(recording).revision == 4

    assert texts(store, recording) == [("S1", "patient has hypokalaemia"), ("S1", "since tuesday")]
    assert texts(store, recording, revision=1) == [
        ("S1", f"patient has {SECRET}"), ("S2", "since tuesday"), ("S1", "uh um")
    ]
    assert texts(store, recording, revision=2) == [
        ("S1", "patient has hypokalaemia"), ("S2", "since tuesday"), ("S1", "uh um")
    ]
    assert [s.revision for s in store.read_transcript(recording, "t", "r")] == [2, 3]
    # All versions are rows: 3 originals + 3 edits.
    assert store._db.execute("SELECT COUNT(*) FROM segments").fetchone()[0] == 6

    actions = [(e.action, e.detail) for e in store.audit_events(recording) if e.action.startswith("edit:")]
    assert actions == [
        ("edit:text", {"segment": a, "revision": 2}),
        ("edit:speaker", {"segment": b, "from": "S2", "to": "S1", "revision": 3}),
        ("edit:delete", {"segment": c, "revision": 4}),
    ]
    assert_audit_has_no_text(store)


def test_no_op_edits_do_not_bump(store: SessionStore, recording: str) -> None:
    a = store.add_segment(recording, 0, 1, "S1", "same words")
    assert store.edit_segment_text(recording, a, "  same words ", "c") == 1
    assert store.set_segment_speaker(recording, a, "S1", "c") == 1
    assert store.swap_speakers(recording, "S7", "S8", "c") == 1
    assert store.get_session(recording).revision == 1


def test_swap_speakers_is_one_revision(store: SessionStore, recording: str) -> None:
    for i, label in enumerate(["S1", "S2", "S1", "S3", "S2"]):
        store.add_segment(recording, i, i + 1, label, f"line {i}")
    store.transition(recording, "stopped", "panel")
    store.set_speaker_name(recording, "S1", "Clinician", "clinician")  # revision 2
    store.set_speaker_name(recording, "S2", "Patient", "clinician")  # revision 3
    assert store.swap_speakers(recording, "S1", "S2", "clinician") == 4
    segs = store.read_transcript(recording, "t", "r")
    assert [(s.speaker, s.speaker_name) for s in segs] == [
        ("S2", "Patient"), ("S1", "Clinician"), ("S2", "Patient"), ("S3", "Speaker 3"), ("S1", "Clinician")
    ]
    assert {s.revision for s in segs if s.speaker != "S3"} == {4}
    swap = store.audit_events(recording)[-2]
    assert swap.action == "edit:swap-speakers"
    assert swap.detail == {"a": "S1", "b": "S2", "segments": 4, "revision": 4}
    name_event = next(e for e in store.audit_events(recording) if e.action == "edit:speaker-name")
    assert name_event.detail == {"label": "S1", "revision": 2}  # the display name itself is not logged
    with pytest.raises(ValueError):
        store.swap_speakers(recording, "S1", "S1", "c")


def test_edit_errors(store: SessionStore, recording: str) -> None:
    a = store.add_segment(recording, 0, 1, "S1", "words")
    other = store.create_session("Y", "exam-1", "Dr", "dev", "site")
    with pytest.raises(SegmentNotFound, match="nope"):
        store.edit_segment_text(recording, "nope", "x", "c")
    with pytest.raises(SegmentNotFound):  # a segment id only counts within its own session
        store.edit_segment_text(other.id, a, "x", "c")
    store.delete_segment(recording, a, "c")
    with pytest.raises(SegmentNotFound):  # deleted segments cannot be edited or deleted again
        store.delete_segment(recording, a, "c")
    with pytest.raises(ValueError, match="no revision 9"):
        store.read_transcript(recording, "t", "r", revision=9)


def test_edits_after_sending_make_a_new_revision_to_send(store: SessionStore, recording: str) -> None:
    a = store.add_segment(recording, 0, 1, "S1", "draft")
    store.transition(recording, "stopped", "panel")
    first = store.enqueue(recording, "clinician")
    store.mark_acked(first.id)
    assert store.get_session(recording).state is State.SYNCED
    rev = store.edit_segment_text(recording, a, "final", "clinician")
    # Once sent, a correction is queued by the edit itself: the clinic must get it before retention.
    assert store.get_session(recording).state is State.QUEUED
    assert [i.revision for i in store.outbox_items(recording) if i.acked_at is None] == [rev]
    second = store.enqueue(recording, "clinician")  # pressing Send again changes nothing
    assert (second.revision, store.get_session(recording).state) == (rev, State.QUEUED)


def test_purged_transcript_cannot_be_read_or_edited(store: SessionStore, recording: str) -> None:
    a = store.add_segment(recording, 0, 1, "S1", "words")
    store.transition(recording, "stopped", "panel")
    store.purge(recording, "clinician")
    with pytest.raises(SessionClosed, match="purged"):
        store.read_transcript(recording, "t", "r")
    with pytest.raises(SessionClosed):
        store.edit_segment_text(recording, a, "x", "c")
    with pytest.raises(SessionClosed):
        store.set_name(recording, "x", "c")
