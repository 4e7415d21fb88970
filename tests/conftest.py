"""Fixtures shared by the store tests: a settable clock and a store that uses it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.store import SessionStore, open_store


class Clock:
    """Wall clock the test sets by hand, so timestamps and retention are exact."""

    def __init__(self, now: float = 1_760_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float = 1.0) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[SessionStore]:
    with open_store(str(tmp_path / "sessions.db"), clock=clock) as s:
        yield s
