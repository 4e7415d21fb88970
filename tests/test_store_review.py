"""Review tools in the store (real SQLite file): undo, "edited" mark, split / join / add a line,
"this speaker is me", and discarding a visit (purged like retention, audited)."""

from __future__ import annotations

import sqlite3

import pytest

from appliance.store import IllegalTransition, SessionClosed, SessionStore, State


@pytest.fixture
def stopped(store: SessionStore) -> str:
    s = store.create_session("P.Q.", "exam-1", "Dr Lind", "dev-1", "west", ["SOAP"])
    store.transition(s.id, "recording", "panel")
    store.add_segment(s.id, 0.0, 2.0, "S1", "good morning how are you")
    store.add_segment(s.id, 2.5, 4.0, "S2", "fine thanks")
    store.add_segment(s.id, 4.5, 6.0, "S1", "any pain today")
    store.transition(s.id, "stopped", "panel")
    return s.id


def lines(store: SessionStore, sid: str) -> list[tuple[str, str, bool]]:
    return [(g.speaker, g.text, g.edited) for g in store.read_transcript(sid, "test", "check")]


def ids(store: SessionStore, sid: str) -> list[str]:
    return [g.id for g in store.read_transcript(sid, "test", "check")]


def test_edits_are_marked_and_undone_one_at_a_time(store: SessionStore, stopped: str) -> None:
    original = lines(store, stopped)
    assert all(not edited for _, _, edited in original)
    assert store.undoable_edit(stopped) is None
    with pytest.raises(ValueError, match="no change to undo"):
        store.undo_last_edit(stopped, "panel")
    first, _, third = ids(store, stopped)
    store.edit_segment_text(stopped, first, "good morning, how are you?", "panel")
    store.set_consent(stopped, True, "panel")  # a detail change in between is not a transcript edit
    store.delete_segment(stopped, third, "panel")
    assert lines(store, stopped) == [("S1", "good morning, how are you?", True), ("S2", "fine thanks", False)]
    assert store.undoable_edit(stopped) == "edit:delete"
    store.undo_last_edit(stopped, "panel")
    assert lines(store, stopped)[-1] == ("S1", "any pain today", False)  # back as recognised: no mark
    assert store.undoable_edit(stopped) == "edit:text"
    rev = store.undo_last_edit(stopped, "panel")
    assert lines(store, stopped) == original
    assert store.get_session(stopped).consent  # undo takes back transcript edits, not the details
    assert store.undoable_edit(stopped) is None
    # Nothing was overwritten: the edited revision is still readable, and the undo is audited.
    assert ("S1", "good morning, how are you?", True) in lines_at(store, stopped, 2)
    assert [e.detail["undone"] for e in store.audit_events(stopped) if e.action == "edit:undo"] == \
        ["edit:delete", "edit:text"]
    assert store.get_session(stopped).revision == rev


def lines_at(store: SessionStore, sid: str, revision: int) -> list[tuple[str, str, bool]]:
    return [(g.speaker, g.text, g.edited) for g in store.read_transcript(sid, "test", "check", revision=revision)]


def test_split_join_and_add_a_line_and_undo_them(store: SessionStore, stopped: str) -> None:
    first, second, third = ids(store, stopped)
    _, new = store.split_segment(stopped, first, 2, "panel")
    got = store.read_transcript(stopped, "test", "check")
    assert [(g.text, g.edited) for g in got[:2]] == [("good morning", True), ("how are you", True)]
    assert got[1].id == new and got[1].speaker == "S1"
    assert got[0].start == 0.0 and got[0].end == got[1].start and 0.0 < got[1].start < 2.0 and got[1].end == 2.0
    with pytest.raises(ValueError, match="cannot be split"):
        store.split_segment(stopped, new, 0, "panel")
    store.merge_with_next(stopped, second, "panel")
    assert [t for _, t, _ in lines(store, stopped)] == ["good morning", "how are you", "fine thanks any pain today"]
    with pytest.raises(ValueError, match="last line"):
        store.merge_with_next(stopped, second, "panel")
    _, added = store.insert_segment(stopped, new, "S2", "  I slept badly  ", "panel")
    assert lines(store, stopped)[2] == ("S2", "I slept badly", True)
    for _ in range(3):  # insert, merge, split: back to what was recognised
        store.undo_last_edit(stopped, "panel")
    assert [g.id for g in store.read_transcript(stopped, "test", "check")] == [first, second, third]
    assert [t for _, t, _ in lines(store, stopped)] == ["good morning how are you", "fine thanks", "any pain today"]
    assert added not in ids(store, stopped)


def test_undo_keeps_a_line_the_recogniser_added_after_the_edit(store: SessionStore, stopped: str) -> None:
    first = ids(store, stopped)[0]
    store.edit_segment_text(stopped, first, "good morning", "panel")
    late = store.add_segment(stopped, 7.0, 8.0, "S2", "the last words")  # the utterance in flight at Stop
    store.undo_last_edit(stopped, "panel")
    assert late in ids(store, stopped) and lines(store, stopped)[0][1] == "good morning how are you"


def test_this_speaker_is_me_names_clinician_and_patient(store: SessionStore, stopped: str) -> None:
    rev = store.get_session(stopped).revision
    store.speaker_is_me(stopped, "S2", "panel")
    assert store.speakers(stopped) == {"S1": "Patient", "S2": "Clinician"}
    assert [g.speaker_name for g in store.read_transcript(stopped, "test", "check")] == \
        ["Patient", "Clinician", "Patient"]
    assert store.get_session(stopped).revision == rev + 1  # one action, one revision
    with pytest.raises(ValueError, match="S9"):
        store.speaker_is_me(stopped, "S9", "panel")


def test_discard_purges_like_retention_and_is_audited(store: SessionStore, stopped: str) -> None:
    sid = stopped
    s = store.discard(sid, "panel", "wrong-patient")
    assert (s.state, s.purge_reason, s.name) == (State.PURGED, "discarded", "")
    with pytest.raises(SessionClosed):
        store.read_transcript(sid, "test", "check")
    conn = sqlite3.connect(store.path)
    for table in ("segments", "speakers", "notes", "outbox", "voiceprints"):
        assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE session_id = ?", [sid]).fetchone()[0] == 0
    conn.close()
    actions = [(e.action, e.detail) for e in store.audit_events(sid)]
    assert ("discard", {"why": "wrong-patient", "from": "stopped"}) in actions
    assert any(a == "state:stopped->purged" and d["reason"] == "discarded" for a, d in actions)
    with pytest.raises(IllegalTransition):
        store.discard(sid, "panel", "wrong-patient")
    with pytest.raises(ValueError, match="reason"):
        store.discard(sid, "panel", "")


def test_retention_purge_records_its_reason(store: SessionStore, stopped: str) -> None:
    assert store.purge(stopped, "retention").purge_reason == "retention"


def test_confidence_is_kept_with_the_words_and_goes_when_they_are_rewritten(store: SessionStore) -> None:
    s = store.create_session("C.F.", "exam-1", "", "dev-1", "west", ["SOAP"])
    store.transition(s.id, "recording", "panel")
    sure = store.add_segment(s.id, 0.0, 1.0, "S1", "blood pressure is fine", confidence=0.93)
    unsure = store.add_segment(s.id, 1.0, 2.0, "S2", "metoprolol twice daily", confidence=0.31,
                               word_confidence=[0.12, 0.9, 0.95])
    unknown = store.add_segment(s.id, 2.0, 3.0, "S1", "okay")
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match="confidence"):
            store.add_segment(s.id, 3.0, 4.0, "S1", "x", confidence=bad)
        with pytest.raises(ValueError, match="one 0–1 number per word"):
            store.add_segment(s.id, 3.0, 4.0, "S1", "x y", word_confidence=[0.5, bad])
    with pytest.raises(ValueError, match="2 words, 1 numbers"):
        store.add_segment(s.id, 3.0, 4.0, "S1", "x y", word_confidence=[0.5])
    store.transition(s.id, "stopped", "panel")

    def conf() -> dict[str, tuple[float | None, tuple[float, ...] | None]]:
        return {g.id: (g.confidence, g.word_confidence) for g in store.read_transcript(s.id, "test", "check")}

    recognised = {sure: (0.93, None), unsure: (0.31, (0.12, 0.9, 0.95)), unknown: (None, None)}
    assert conf() == recognised
    store.swap_speakers(s.id, "S1", "S2", "panel")  # a speaker change keeps the words' confidence
    assert conf() == recognised
    store.edit_segment_text(s.id, unsure, "metoprolol twice a day", "panel")  # checked by a person
    assert conf()[unsure] == (None, None)
    store.undo_last_edit(s.id, "panel")
    assert conf() == recognised


def test_note_status_follows_the_outbox_and_the_notes(store: SessionStore, stopped: str) -> None:
    store.set_templates(stopped, ["SOAP", "H&P"], "panel")
    assert store.note_status(stopped) == {}  # not sent: nothing requested yet
    item = store.enqueue(stopped, "panel")
    assert store.note_status(stopped) == {"SOAP": "requested", "H&P": "requested"}
    store.mark_acked(item.id)
    assert store.note_status(stopped) == {"SOAP": "generating", "H&P": "generating"}
    store.save_note(stopped, item.revision, "SOAP", "S: knee pain", actor="sync")
    assert store.note_status(stopped) == {"SOAP": "ready", "H&P": "generating"}
    # Edited and sent again: the old SOAP note does not answer the new revision.
    store.edit_segment_text(stopped, ids(store, stopped)[0], "good morning", "panel")
    store.enqueue(stopped, "panel")
    assert store.note_status(stopped) == {"SOAP": "requested", "H&P": "requested"}
    reads = [e for e in store.audit_events(stopped) if e.action == "read:notes"]
    assert reads == []  # the status reads no note text


def test_search_finds_current_words_and_names_and_is_audited(store: SessionStore, stopped: str) -> None:
    other = store.create_session("K.L.", "exam-1", "", "dev-1", "west", ["SOAP"])
    store.transition(other.id, "recording", "panel")
    store.add_segment(other.id, 0.0, 1.0, "S1", "the PAIN is 50% better")
    store.transition(other.id, "stopped", "panel")
    hits = store.search("pain", "panel", "history search")
    assert [(h.session.id, h.line, h.matches) for h in hits] == [
        (other.id, "the PAIN is 50% better", 1), (stopped, "any pain today", 1)]
    assert [h.session.id for h in store.search("50%", "panel", "history search")] == [other.id]
    assert store.search("5_%", "panel", "history search") == []  # LIKE wildcards are literal
    assert [(h.session.id, h.line) for h in store.search("k.l.", "panel", "history search")] == [(other.id, "")]
    # Only the current words: a deleted line is not found, and a purged visit never is.
    store.delete_segment(stopped, ids(store, stopped)[2], "panel")
    assert [h.session.id for h in store.search("pain", "panel", "history search")] == [other.id]
    store.discard(other.id, "panel", "test")
    assert store.search("pain", "panel", "history search") == []
    events = [e for e in store.audit_events() if e.action == "search"]
    assert events[0].detail == {"reason": "history search", "hits": 2, "chars": 4}
    assert all("pain" not in str(e.detail).lower() for e in store.audit_events())
    reads = [(e.session_id, e.detail["reason"]) for e in store.audit_events() if e.action == "read"]
    assert (other.id, "history search") in reads and (stopped, "history search") in reads
    with pytest.raises(ValueError, match="empty"):
        store.search("   ", "panel", "history search")
