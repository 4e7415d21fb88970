"""The session state machine, kept pure (no database) so the panel and daemon can ask it too.

idle → recording ⇄ paused → stopped → reviewed → queued → synced → purged, plus: re-review after
more edits, re-send (a newer revision supersedes the queued one), re-queue a synced session that
was edited after sending, and discarding a session that was never sent.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    IDLE = "idle"
    RECORDING = "recording"
    PAUSED = "paused"
    STOPPED = "stopped"
    REVIEWED = "reviewed"
    QUEUED = "queued"
    SYNCED = "synced"
    PURGED = "purged"


TRANSITIONS: dict[State, frozenset[State]] = {
    State.IDLE: frozenset({State.RECORDING, State.PURGED}),
    State.RECORDING: frozenset({State.PAUSED, State.STOPPED}),
    State.PAUSED: frozenset({State.RECORDING, State.STOPPED}),
    State.STOPPED: frozenset({State.REVIEWED, State.QUEUED, State.PURGED}),
    State.REVIEWED: frozenset({State.REVIEWED, State.QUEUED, State.PURGED}),
    State.QUEUED: frozenset({State.QUEUED, State.SYNCED}),
    State.SYNCED: frozenset({State.QUEUED, State.PURGED}),
    State.PURGED: frozenset(),
}

# Verbs for error messages, keyed by the target state ("cannot stop session …").
_VERBS: dict[State, str] = {
    State.IDLE: "reset",
    State.RECORDING: "start",
    State.PAUSED: "pause",
    State.STOPPED: "stop",
    State.REVIEWED: "review",
    State.QUEUED: "send",
    State.SYNCED: "mark as synced",
    State.PURGED: "purge",
}

# States in which capture may be running; a crash leaves a session here until recovered.
LIVE_STATES: frozenset[State] = frozenset({State.RECORDING, State.PAUSED})


class IllegalTransition(ValueError):
    """A state change the workflow does not allow; the message says what is allowed instead."""

    def __init__(self, session_id: str, current: State, target: State) -> None:
        self.session_id = session_id
        self.current = current
        self.target = target
        self.allowed = allowed_from(current)
        listed = ", ".join(self.allowed) or "none, it is final"
        super().__init__(
            f"cannot {_VERBS[target]} session {session_id}: it is '{current}' "
            f"(allowed from {current}: {listed})"
        )


def parse_state(value: str | State) -> State:
    """A State from its name, with an error listing the valid names."""
    try:
        return State(value)
    except ValueError:
        raise ValueError(f"unknown session state {value!r} (one of: {', '.join(State)})") from None


def allowed_from(state: State | str) -> tuple[State, ...]:
    """Targets reachable from `state`, in workflow order."""
    targets = TRANSITIONS[parse_state(state)]
    return tuple(s for s in State if s in targets)


def is_allowed(current: State | str, target: State | str) -> bool:
    return parse_state(target) in TRANSITIONS[parse_state(current)]


def check_transition(session_id: str, current: State | str, target: State | str) -> State:
    """Return the target State, or raise IllegalTransition."""
    cur, tgt = parse_state(current), parse_state(target)
    if tgt not in TRANSITIONS[cur]:
        raise IllegalTransition(session_id, cur, tgt)
    return tgt
