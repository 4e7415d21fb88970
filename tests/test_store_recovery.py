"""A damaged database at start-up: set aside (kept byte for byte), a fresh store with every row
that can still be read, and the daemon says so (log, `ctl status`), instead of a traceback or
silently running on a broken file."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from appliance.store import open_store
from appliance.store.recovery import find_damage, open_store_checked
from tests.broker import make_finished_sessions
from tests.daemon import DaemonProcess, write_config, write_visit_wav

PAGE = 4096


def rows(path: Path, table: str) -> dict[tuple, tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        cur = conn.execute(f"SELECT * FROM {table}")
        return {r[:2]: r for r in cur}
    finally:
        conn.close()


def damage_a_segments_page(path: Path) -> None:
    """Overwrite one leaf page in the middle of the segments table with garbage."""
    conn = sqlite3.connect(path)
    leaves = [p for (p,) in conn.execute(
        "SELECT pageno FROM dbstat WHERE name = 'segments' AND pagetype = 'leaf' ORDER BY pageno")]
    conn.close()
    assert len(leaves) > 10
    with open(path, "r+b") as f:
        f.seek((leaves[len(leaves) // 2] - 1) * PAGE)
        f.write(b"\xa5" * PAGE)


def store_with_visits(path: Path) -> tuple[dict, dict]:
    with open_store(str(path)) as store:
        make_finished_sessions(store, 12, segments=40, enqueue=True)
        store.checkpoint()
    return rows(path, "sessions"), rows(path, "segments")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_damaged_page_is_set_aside_and_readable_rows_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    sessions, segments = store_with_visits(path)
    damage_a_segments_page(path)
    damaged = sha(path)
    assert find_damage(str(path)) != ""

    store, recovery = open_store_checked(str(path))
    try:
        assert recovery is not None and "damaged" in recovery.message()
        aside = Path(recovery.aside)
        assert sha(aside) == damaged  # kept as it was, nothing deleted or rewritten
        assert store.integrity_check() == ["ok"]
        assert rows(path, "sessions") == sessions  # the undamaged table comes back whole
        got = rows(path, "segments")
        assert set(got) < set(segments)  # the rows of the damaged page are missing …
        assert all(got[k] == segments[k] for k in got)  # … every other one is copied exactly
        per_page = max(1, PAGE // 200)  # a leaf holds a few dozen of these ~100-byte rows at most
        assert len(segments) - len(got) <= 3 * per_page, (len(segments), len(got))
        assert recovery.copied["segments"] == len(got) and recovery.copied["sessions"] == len(sessions)
        assert any(e.action == "store:recovered" for e in store.audit_events())
    finally:
        store.close()
    assert open_store_checked(str(path))[1] is None  # the fresh store is sound


def test_a_file_that_is_not_a_database_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    path.write_bytes(b"this is not SQLite" * 500)
    store, recovery = open_store_checked(str(path))
    store.close()
    assert recovery is not None and "not a database" in recovery.problem
    assert Path(recovery.aside).read_bytes() == b"this is not SQLite" * 500


def test_a_locked_database_is_not_mistaken_for_a_damaged_one(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    store_with_visits(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("PRAGMA locking_mode = EXCLUSIVE")
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            find_damage(str(path), busy_timeout=0.2)
    finally:
        other.close()
    assert not list(tmp_path.glob("*.damaged-*"))
    assert open_store_checked(str(path))[1] is None


@pytest.mark.slow
def test_daemon_starts_on_a_fresh_store_and_says_so(tmp_path: Path) -> None:
    wav = tmp_path / "visit.wav"
    write_visit_wav(wav)
    db = tmp_path / "state" / "sessions.db"
    db.parent.mkdir()
    sessions, _ = store_with_visits(db)
    damage_a_segments_page(db)
    with DaemonProcess(write_config(tmp_path, wav)) as daemon:
        st = daemon.status()
        assert "damaged" in st["storage"]["notice"] and ".damaged-" in st["storage"]["notice"]
        assert [a["key"] for a in st["alerts"]] == ["database"]  # for IT: systemd STATUS, the status topic
        assert "Session database damaged" in st["alerts"][0]["message"]
        assert "The session database was damaged" in daemon.log.read_text()
        assert daemon.ctl("start", name="JD")["ok"]  # the room can record again
        assert daemon.ctl("stop")["ok"]
    kept = [p.name for p in db.parent.glob("sessions.db.damaged-*") if not p.name.endswith(("-wal", "-shm"))]
    assert len(kept) == 1, kept
    with open_store(str(db)) as store:
        assert {s.id for s in store.list_sessions()} >= {k[0] for k in sessions}
