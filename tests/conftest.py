"""Fixtures shared by the store tests: a settable clock, a device store that uses it, and the
clinic store on each backend (SQLite file, throwaway PostgreSQL server)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.store import SessionStore, open_store
from tests.postgres import ClinicStoreTarget, PostgresServer

# pki, broker and clinic: the fixtures of the tests on a real Mosquitto.
pytest_plugins = ["tests.sync_fixtures"]


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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def clinic_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ClinicStoreTarget]:
    """The clinic store a test runs against: every clinic storage test runs on both backends."""
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        target = ClinicStoreTarget("postgresql", server.create_database())
    else:
        target = ClinicStoreTarget("sqlite", str(tmp_path / "clinic" / "transcripts.db"))
    yield target
    target.close_all()
