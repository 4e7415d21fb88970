"""The pure state machine: every allowed and every illegal pair."""

from __future__ import annotations

import itertools

import pytest

from appliance.store.states import (
    TRANSITIONS,
    IllegalTransition,
    State,
    allowed_from,
    check_transition,
    is_allowed,
)

ALLOWED = {
    ("idle", "recording"),
    ("recording", "paused"),
    ("paused", "recording"),
    ("recording", "stopped"),
    ("paused", "stopped"),
    ("stopped", "reviewed"),
    ("reviewed", "reviewed"),
    ("stopped", "queued"),
    ("reviewed", "queued"),
    ("queued", "queued"),
    ("synced", "queued"),
    ("queued", "synced"),
    ("synced", "purged"),
    ("idle", "purged"),
    ("stopped", "purged"),
    ("reviewed", "purged"),
}
ALL_PAIRS = set(itertools.product([s.value for s in State], repeat=2))
ILLEGAL = sorted(ALL_PAIRS - ALLOWED)


def test_table_matches_the_product_workflow() -> None:
    table = {(a.value, b.value) for a, targets in TRANSITIONS.items() for b in targets}
    assert table == ALLOWED
    assert set(TRANSITIONS) == set(State)


@pytest.mark.parametrize(("current", "target"), sorted(ALLOWED))
def test_allowed(current: str, target: str) -> None:
    assert is_allowed(current, target)
    assert check_transition("s-1", current, target) is State(target)


@pytest.mark.parametrize(("current", "target"), ILLEGAL)
def test_illegal(current: str, target: str) -> None:
    assert not is_allowed(current, target)
    with pytest.raises(IllegalTransition) as info:
        check_transition("0190abcd", current, target)
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.session_id, err.current, err.target) == ("0190abcd", State(current), State(target))
    assert f"session 0190abcd: it is '{current}'" in str(err)
    assert f"(allowed from {current}: " in str(err)


def test_message_names_verb_state_and_alternatives() -> None:
    with pytest.raises(IllegalTransition, match=r"^cannot stop session 0190x: it is 'synced' "
                       r"\(allowed from synced: queued, purged\)$"):
        check_transition("0190x", State.SYNCED, State.STOPPED)


def test_purged_is_final() -> None:
    assert allowed_from("purged") == ()
    with pytest.raises(IllegalTransition, match="allowed from purged: none"):
        check_transition("s", "purged", "idle")


def test_allowed_from_in_workflow_order() -> None:
    assert allowed_from(State.STOPPED) == (State.REVIEWED, State.QUEUED, State.PURGED)


def test_unknown_state_name() -> None:
    with pytest.raises(ValueError, match="unknown session state 'deleted'"):
        check_transition("s", "idle", "deleted")
