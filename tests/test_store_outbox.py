"""The outbox bookkeeping: enqueue, due items, attempts, acks and superseding."""

from __future__ import annotations

import pytest

from appliance.store import IllegalTransition, OutboxItemNotFound, SessionStore, State
from tests.conftest import Clock


def stopped_session(store: SessionStore) -> tuple[str, str]:
    s = store.create_session("A.B.", "exam-1", "Dr", "dev", "site")
    store.transition(s.id, "recording", "panel")
    seg = store.add_segment(s.id, 0, 1, "S1", "hello")
    store.transition(s.id, "stopped", "panel")
    return s.id, seg


def test_enqueue_moves_to_queued_atomically(store: SessionStore, clock: Clock) -> None:
    sid, _ = stopped_session(store)
    item = store.enqueue(sid, "clinician")
    assert (item.session_id, item.revision, item.attempts) == (sid, 1, 0)
    assert item.acked_at is None and not item.superseded
    assert item.created_at == item.next_attempt_at == clock.now
    assert store.get_session(sid).state is State.QUEUED
    assert store.audit_events(sid)[-1].detail == {"revision": 1, "outbox": item.id}
    assert store.next_due() == [item]


def test_enqueue_refused_in_wrong_state_leaves_no_row(store: SessionStore) -> None:
    s = store.create_session("A.B.", "exam-1", "Dr", "dev", "site")
    store.transition(s.id, "recording", "panel")
    with pytest.raises(IllegalTransition, match="cannot send"):
        store.enqueue(s.id, "clinician")
    assert store.outbox_items(s.id) == []


def test_transition_to_queued_goes_through_the_outbox(store: SessionStore) -> None:
    sid, _ = stopped_session(store)
    store.transition(sid, "queued", "clinician")
    assert [i.revision for i in store.outbox_items(sid)] == [1]


def test_newer_revision_supersedes_and_resend_is_idempotent(store: SessionStore) -> None:
    sid, seg = stopped_session(store)
    first = store.enqueue(sid, "clinician")
    assert store.enqueue(sid, "clinician") == first  # same revision: same row
    store.edit_segment_text(sid, seg, "hello there", "clinician")
    second = store.enqueue(sid, "clinician")
    assert second.revision == 2 and second.id != first.id
    items = store.outbox_items(sid)
    assert [(i.revision, i.superseded) for i in items] == [(1, True), (2, False)]
    assert store.next_due() == [second]


def test_due_ordering_and_attempts(store: SessionStore, clock: Clock) -> None:
    a, _ = stopped_session(store)
    b, _ = stopped_session(store)
    item_a = store.enqueue(a, "c")
    clock.now += 1
    item_b = store.enqueue(b, "c")
    assert [i.id for i in store.next_due()] == [item_a.id, item_b.id]
    retried = store.mark_attempt(item_a.id, next_attempt_at=clock.now + 30)
    assert retried.attempts == 1 and retried.next_attempt_at == clock.now + 30
    assert [i.id for i in store.next_due()] == [item_b.id]
    assert [i.id for i in store.next_due(now=clock.now + 30)] == [item_b.id, item_a.id]
    assert store.next_due(now=clock.now + 30, limit=1) == [store.outbox_items(b)[0]]
    assert store.mark_attempt(item_a.id, clock.now + 60).attempts == 2


def test_ack_of_latest_revision_syncs(store: SessionStore, clock: Clock) -> None:
    sid, _ = stopped_session(store)
    item = store.enqueue(sid, "clinician")
    clock.now += 5
    acked = store.mark_acked(item.id)
    assert acked.acked_at == clock.now
    session = store.get_session(sid)
    assert (session.state, session.synced_at) == (State.SYNCED, clock.now)
    assert store.audit_events(sid)[-1].action == "state:queued->synced"
    assert store.next_due() == []
    assert store.mark_acked(item.id) == acked  # a duplicate ack changes nothing


def test_ack_of_an_old_revision_does_not_sync(store: SessionStore) -> None:
    sid, seg = stopped_session(store)
    old = store.enqueue(sid, "clinician")
    store.edit_segment_text(sid, seg, "changed", "clinician")
    new = store.enqueue(sid, "clinician")
    store.mark_acked(old.id)
    assert store.get_session(sid).state is State.QUEUED
    store.mark_acked(new.id)
    assert store.get_session(sid).state is State.SYNCED


def test_ack_after_edits_that_were_not_sent_yet(store: SessionStore) -> None:
    sid, seg = stopped_session(store)
    item = store.enqueue(sid, "clinician")
    store.edit_segment_text(sid, seg, "edited while queued", "clinician")  # revision 2 replaces 1 in the queue
    store.mark_acked(item.id)  # the clinic's ack for revision 1, sent before the edit
    session = store.get_session(sid)
    # The clinic has revision 1 only: the session stays queued until revision 2 is acknowledged.
    assert (session.state, session.revision) == (State.QUEUED, 2)
    assert [i.revision for i in store.next_due(store._clock() + 1)] == [2]
    assert store.enqueue(sid, "clinician").revision == 2


def test_unknown_outbox_item(store: SessionStore) -> None:
    with pytest.raises(OutboxItemNotFound, match="42"):
        store.mark_acked(42)
    with pytest.raises(KeyError):
        store.mark_attempt(42, 0.0)
