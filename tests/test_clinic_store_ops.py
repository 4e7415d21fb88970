"""Clinic store operations on real SQLite files, a real PostgreSQL server and processes: every read
of a transcript is audited (both backends), `clinic backup` copies a SQLite store while it is being
written, restorable as documented in docs/operations.md (a PostgreSQL store is refused with the
pointer to pg_dump), and the SQLite files are private with secure_delete on."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from appliance.store import SessionStore
from appliance.sync.payload import build_payload
from clinic import cli
from clinic.config import IngestConfig
from clinic.ingest import Ingest
from clinic.store import SqliteTranscriptStore
from common import protocol
from tests.broker import make_finished_sessions
from tests.postgres import ClinicStoreTarget, PostgresServer

TOPIC = "scribe/site1/dev-a/transcript"
CLINIC = str(Path(sys.executable).parent / "clinic")


def config_for(tmp_path: Path, target: ClinicStoreTarget) -> Path:
    cfg = tmp_path / "clinic.toml"
    cfg.write_text(target.toml())
    return cfg


def test_every_transcript_read_is_audited(store: SessionStore, clinic_store: ClinicStoreTarget, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    repo = clinic_store.open()
    [sid] = make_finished_sessions(store, 1, segments=3)
    p = build_payload(store, sid, 1, [])
    Ingest("scribe", repo, IngestConfig()).handle_batch([(TOPIC, protocol.encode(p))])
    assert repo.audit_log() == []  # storing is not reading
    cfg = str(config_for(tmp_path, clinic_store))
    assert cli.main(["--config", cfg, "sessions", "list"]) == 0  # ids and counts only: no text, no row
    capsys.readouterr()
    assert cli.main(["--config", cfg, "sessions", "show", sid, "--reason", "EHR import"]) == 0
    assert json.loads(capsys.readouterr().out) == p
    assert cli.main(["--config", cfg, "sessions", "show", "0190aaaa-0000-7000-8000-000000000000"]) == 1
    assert repo.get(sid, 1, actor="notes", reason="write SOAP note") == p
    [by_cli, by_notes] = repo.audit_log()
    me = pwd.getpwuid(os.getuid()).pw_name
    assert (by_cli.actor, by_cli.action, by_cli.session_id, by_cli.revision, by_cli.detail) == (
        me, "read", sid, 1, "EHR import")
    assert (by_notes.actor, by_notes.session_id, by_notes.detail) == ("notes", sid, "write SOAP note")
    assert by_cli.at <= by_notes.at
    capsys.readouterr()
    assert cli.main(["--config", cfg, "audit", "--session", sid, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["actor"], r["action"]) for r in rows] == [(me, "read"), ("notes", "read")]
    repo.close()


@pytest.mark.slow
def test_backup_while_the_store_is_written_then_restore(store: SessionStore, tmp_path: Path) -> None:
    db = tmp_path / "clinic" / "transcripts.db"
    target = ClinicStoreTarget("sqlite", str(db))
    repo = target.open()
    ingest = Ingest("scribe", repo, IngestConfig())
    ids = make_finished_sessions(store, 120, segments=30, bulk=True)
    payloads = [build_payload(store, sid, 1, []) for sid in ids]
    ingest.handle_batch([(TOPIC, protocol.encode(p)) for p in payloads[:60]])
    done = threading.Event()

    def keep_writing() -> None:  # the server goes on storing visits during the backup
        for i in range(60, 120, 5):
            ingest.handle_batch([(TOPIC, protocol.encode(p)) for p in payloads[i:i + 5]])
        done.set()

    writer = threading.Thread(target=keep_writing)
    writer.start()
    cfg = config_for(tmp_path, target)
    copy = tmp_path / "backups" / "transcripts-2026-12-01.db"
    copy.parent.mkdir()
    res = subprocess.run([CLINIC, "--config", str(cfg), "backup", str(copy)], capture_output=True, text=True,
                         timeout=120)
    writer.join(60)
    assert res.returncode == 0, res.stderr
    assert "integrity ok" in res.stdout
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600  # it holds every transcript
    again = subprocess.run([CLINIC, "--config", str(cfg), "backup", str(copy)], capture_output=True, text=True,
                           timeout=60)
    assert again.returncode == 1 and "exists" in again.stderr  # an older backup is never overwritten
    assert done.is_set() and repo.count() == 120
    repo.close()

    # Restore as docs/operations.md says: server stopped, the damaged store and its -wal/-shm moved
    # aside, the backup copied in its place.
    for suffix in ("", "-wal", "-shm"):
        old = Path(f"{db}{suffix}")
        if old.exists():
            old.rename(tmp_path / f"damaged{suffix}")
    shutil.copy2(copy, db)
    restored = target.open()
    in_copy = {s.session_id for s in restored.list()}
    assert len(in_copy) >= 60 and in_copy <= set(ids)  # everything stored before the backup began
    for p in payloads:
        if p["session_id"] in in_copy:
            assert restored.get(p["session_id"], 1, actor="test") == p
    [backup_row] = [e for e in restored.audit_log() if e.action == "backup"]  # the copy records itself
    assert backup_row.actor == pwd.getpwuid(os.getuid()).pw_name and str(copy) in backup_row.detail
    restored.close()


def test_devices_check_names_rooms_offline_silent_or_alerting(clinic_store: ClinicStoreTarget, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:

    def status(device: str, state: str, **extra: object) -> tuple[str, bytes]:
        msg = {"schema": "scribe.status/1", "state": state, "device_id": device, "site": "site1",
               "room": f"exam {device}", "pending": 3, "ts": time.time(), **extra}
        return f"scribe/site1/{device}/status", protocol.encode(msg)

    an_hour_ago = clinic_store.open(clock=lambda: time.time() - 3600)
    Ingest("scribe", an_hour_ago, IngestConfig()).handle_batch([status("room-4", "online")])  # then silence
    an_hour_ago.close()
    repo = clinic_store.open()
    lockouts = [{"key": "panel-pin-lockouts", "message": "3 PIN lockouts in a row", "since": time.time()}]
    Ingest("scribe", repo, IngestConfig()).handle_batch([
        status("room-1", "online"), status("room-2", "offline"), status("room-3", "online", alerts=lockouts)])
    repo.close()
    cfg = str(config_for(tmp_path, clinic_store))
    assert cli.main(["--config", cfg, "devices"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in table] == ["room-1", "room-2", "room-3", "room-4"]
    assert cli.main(["--config", cfg, "devices", "--check", "--json"]) == 1
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["device_id"], r["state"]) for r in rows] == [("room-2", "offline"), ("room-3", "online"),
                                                           ("room-4", "silent")]
    assert rows[1]["status"]["alerts"][0]["key"] == "panel-pin-lockouts"


def test_backup_of_a_postgresql_store_points_to_pg_dump(postgres_server: PostgresServer, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config_for(tmp_path, ClinicStoreTarget("postgresql", postgres_server.create_database()))
    assert cli.main(["--config", str(cfg), "backup", str(tmp_path / "copy.db")]) == 2
    assert "pg_dump" in capsys.readouterr().err and not (tmp_path / "copy.db").exists()


def test_sqlite_store_files_are_private_and_deleted_content_is_zeroed(store: SessionStore, tmp_path: Path) -> None:
    """0600 for the database and its -wal/-shm under a permissive umask, a looser file left by an
    older version is tightened, and secure_delete is on (as on the device)."""
    db = tmp_path / "clinic" / "transcripts.db"
    old_umask = os.umask(0o022)
    try:
        repo = SqliteTranscriptStore(str(db))
        [sid] = make_finished_sessions(store, 1, segments=3)
        sent = protocol.encode(build_payload(store, sid, 1, []))
        Ingest("scribe", repo, IngestConfig()).handle_batch([(TOPIC, sent)])
        modes = {s: stat.S_IMODE(Path(f"{db}{s}").stat().st_mode) for s in ("", "-wal", "-shm")}
        assert modes == {"": 0o600, "-wal": 0o600, "-shm": 0o600}
        assert repo._db.execute("PRAGMA secure_delete").fetchone()[0] == 1
        # Zeroed, not just unlinked from the b-tree: a deleted row's text is gone from the file.
        marker = "tell-tale-3141592653"
        with repo._tx():
            repo._audit("test", "read", None, None, marker)
            repo._db.execute("DELETE FROM audit WHERE detail = ?", [marker])
        repo._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert marker.encode() not in db.read_bytes()
        repo.close()
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{db}{suffix}").exists():
                os.chmod(f"{db}{suffix}", 0o644)
        SqliteTranscriptStore(str(db)).close()
        assert all(stat.S_IMODE(Path(f"{db}{s}").stat().st_mode) == 0o600 for s in ("", "-wal", "-shm")
                   if Path(f"{db}{s}").exists())
    finally:
        os.umask(old_umask)


def test_postgresql_store_survives_a_server_restart(store: SessionStore, postgres_server: PostgresServer) -> None:
    """The database restarts under a running clinic server: the next batch reconnects and is stored."""
    repo = ClinicStoreTarget("postgresql", postgres_server.create_database()).open()
    ingest = Ingest("scribe", repo, IngestConfig())
    first, second = (build_payload(store, sid, 1, []) for sid in make_finished_sessions(store, 2, segments=3))
    assert [a["status"] for _, a in ingest.handle_batch([(TOPIC, protocol.encode(first))])] == ["stored"]
    postgres_server.restart()
    assert [a["status"] for _, a in ingest.handle_batch([(TOPIC, protocol.encode(second))])] == ["stored"]
    assert repo.count() == 2
    repo.close()


def test_postgresql_backend_needs_a_url_and_a_reachable_server(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "clinic.toml"
    cfg.write_text('[store]\nbackend = "postgresql"\n')
    assert cli.main(["--config", str(cfg), "sessions", "list"]) == 2
    assert "store.url" in capsys.readouterr().err
    cfg.write_text(f'[store]\nbackend = "postgresql"\nurl = "postgresql://clinic@/nodb?host={tmp_path}"\n')
    assert cli.main(["--config", str(cfg), "sessions", "list"]) == 2
    err = capsys.readouterr().err
    assert "store.url: cannot connect to PostgreSQL database 'nodb'" in err
