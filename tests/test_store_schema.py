"""Opening the database: file modes, pragmas, and versioned migrations."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlite_utils import Database

from appliance.store import SCHEMA_VERSION, SchemaVersionError, open_store
from appliance.store.base import connect
from appliance.store.schema import MIGRATIONS, migrate, schema_version


def mode(path: Path | str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def test_files_are_private_even_with_a_permissive_umask(tmp_path: Path) -> None:
    path = tmp_path / "state" / "sessions.db"
    old = os.umask(0o000)
    try:
        store = open_store(str(path))
        session = store.create_session("AB", "exam-1", "Dr A", "dev", "site")
        store.transition(session.id, "recording", "panel")
        store.add_segment(session.id, 0.0, 1.0, "S1", "hello")
        for suffix in ("", "-wal", "-shm"):
            assert mode(f"{path}{suffix}") == 0o600, suffix
        assert mode(path.parent) == 0o700
        store.close()
    finally:
        os.umask(old)


def test_existing_loose_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    open_store(str(path)).close()
    assert mode(path) == 0o600


def test_connection_settings(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "s.db"), busy_timeout=2.5)
    db = store._db

    def pragma(name: str) -> object:
        return db.execute(f"PRAGMA {name}").fetchone()[0]

    assert pragma("journal_mode") == "wal"
    assert pragma("synchronous") == 2  # FULL
    assert pragma("foreign_keys") == 1
    assert pragma("secure_delete") == 1
    assert pragma("busy_timeout") == 2500
    with pytest.raises(sqlite3.IntegrityError):
        db.execute(
            "INSERT INTO speakers (session_id, label, name) VALUES ('no-such-session', 'S1', 'x')"
        )
    store.close()


def test_fresh_database_is_at_current_version_with_all_tables(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = open_store(str(path))
    assert store.schema_version == SCHEMA_VERSION == len(MIGRATIONS)
    store.close()
    assert user_version(path) == SCHEMA_VERSION
    tables = set(Database(str(path)).table_names())
    assert {"sessions", "segments", "speakers", "outbox", "audit"} <= tables


def test_migrates_from_v0_empty_database(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 0")
    conn.execute("VACUUM")  # make it a real (empty) SQLite file
    conn.close()
    store = open_store(str(path))
    assert store.schema_version == SCHEMA_VERSION
    assert store.list_sessions() == []
    store.close()


def test_reopening_is_idempotent(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = open_store(path)
    session = store.create_session("AB", "exam-1", "Dr A", "dev", "site")
    store.close()
    again = open_store(path)
    assert again.get_session(session.id) == session
    assert again.schema_version == SCHEMA_VERSION
    again.close()


def test_newer_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    open_store(str(path)).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 3}")
    conn.close()
    with pytest.raises(SchemaVersionError, match=rf"{path}.*version {SCHEMA_VERSION + 3}.*supports "
                       rf"\({SCHEMA_VERSION}\)"):
        open_store(str(path))
    assert user_version(path) == SCHEMA_VERSION + 3


def _v2_add_note_column(db: Database) -> None:
    db.execute("ALTER TABLE sessions ADD COLUMN note_count INTEGER NOT NULL DEFAULT 0")


def _v2_broken(db: Database) -> None:
    db.execute("ALTER TABLE sessions ADD COLUMN half_done INTEGER")
    raise RuntimeError("migration bug")


def _current_database_with_a_session(path: Path) -> str:
    store = open_store(str(path))
    session = store.create_session("AB", "exam-1", "Dr A", "dev", "site", ["SOAP"])
    store.close()
    assert user_version(path) == SCHEMA_VERSION
    return session.id


def test_forward_migration_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    session_id = _current_database_with_a_session(path)
    db = connect(str(path))
    assert migrate(db, [*MIGRATIONS, _v2_add_note_column]) == SCHEMA_VERSION + 1
    assert schema_version(db) == SCHEMA_VERSION + 1
    row = db.table("sessions").get(session_id)
    assert row["note_count"] == 0 and row["name"] == "AB"
    db.close()
    # This software does not know the next version: the upgraded file is refused, not damaged.
    with pytest.raises(SchemaVersionError):
        open_store(str(path))


def test_failed_migration_rolls_back_completely(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    _current_database_with_a_session(path)
    db = connect(str(path))
    with pytest.raises(RuntimeError, match="migration bug"):
        migrate(db, [*MIGRATIONS, _v2_broken])
    assert schema_version(db) == SCHEMA_VERSION
    assert "half_done" not in db.table("sessions").columns_dict
    db.close()
    open_store(str(path)).close()  # still usable by this version


def test_migrating_from_v0_runs_every_step_in_order(tmp_path: Path) -> None:
    calls: list[int] = []

    def step(n: int) -> Callable[[Database], None]:
        def run(db: Database) -> None:
            calls.append(n)
            db.execute(f"CREATE TABLE t{n} (x)")
        return run

    db = connect(str(tmp_path / "s.db"))
    assert migrate(db, [step(1), step(2), step(3)]) == 3
    assert calls == [1, 2, 3]
    assert migrate(db, [step(1), step(2), step(3)]) == 3
    assert calls == [1, 2, 3]  # nothing re-run
    db.close()
