"""Clinic store operations on real SQLite files and processes: every read of a transcript is
audited, and `clinic backup` copies the store while it is being written, restorable as documented
in docs/operations.md."""

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
from appliance.sync import protocol
from appliance.sync.payload import build_payload
from clinic import cli
from clinic.config import IngestConfig
from clinic.ingest import Ingest
from clinic.storage import SqliteTranscriptStore
from tests.broker import make_finished_sessions

TOPIC = "scribe/site1/dev-a/transcript"
CLINIC = str(Path(sys.executable).parent / "clinic")


def config_for(tmp_path: Path, db: Path) -> Path:
    cfg = tmp_path / "clinic.toml"
    cfg.write_text(f'[store]\npath = "{db}"\n')
    return cfg


def test_every_transcript_read_is_audited(store: SessionStore, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "clinic.db"
    repo = SqliteTranscriptStore(str(db))
    [sid] = make_finished_sessions(store, 1, segments=3)
    p = build_payload(store, sid, 1, [])
    Ingest("scribe", repo, IngestConfig()).handle_batch([(TOPIC, protocol.encode(p))])
    assert repo.audit_log() == []  # storing is not reading
    cfg = str(config_for(tmp_path, db))
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


def test_backup_while_the_store_is_written_then_restore(store: SessionStore, tmp_path: Path) -> None:
    db = tmp_path / "clinic" / "transcripts.db"
    repo = SqliteTranscriptStore(str(db))
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
    cfg = config_for(tmp_path, db)
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
    restored = SqliteTranscriptStore(str(db))
    in_copy = {s.session_id for s in restored.list()}
    assert len(in_copy) >= 60 and in_copy <= set(ids)  # everything stored before the backup began
    for p in payloads:
        if p["session_id"] in in_copy:
            assert restored.get(p["session_id"], 1, actor="test") == p
    [backup_row] = [e for e in restored.audit_log() if e.action == "backup"]  # the copy records itself
    assert backup_row.actor == pwd.getpwuid(os.getuid()).pw_name and str(copy) in backup_row.detail
    restored.close()


def test_devices_check_names_rooms_offline_silent_or_alerting(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "clinic.db"

    def status(device: str, state: str, **extra: object) -> tuple[str, bytes]:
        msg = {"schema": "scribe.status/1", "state": state, "device_id": device, "site": "site1",
               "room": f"exam {device}", "pending": 3, "ts": time.time(), **extra}
        return f"scribe/site1/{device}/status", protocol.encode(msg)

    an_hour_ago = SqliteTranscriptStore(str(db), clock=lambda: time.time() - 3600)
    Ingest("scribe", an_hour_ago, IngestConfig()).handle_batch([status("room-4", "online")])  # then silence
    an_hour_ago.close()
    repo = SqliteTranscriptStore(str(db))
    lockouts = [{"key": "panel-pin-lockouts", "message": "3 PIN lockouts in a row", "since": time.time()}]
    Ingest("scribe", repo, IngestConfig()).handle_batch([
        status("room-1", "online"), status("room-2", "offline"), status("room-3", "online", alerts=lockouts)])
    repo.close()
    cfg = str(config_for(tmp_path, db))
    assert cli.main(["--config", cfg, "devices"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in table] == ["room-1", "room-2", "room-3", "room-4"]
    assert cli.main(["--config", cfg, "devices", "--check", "--json"]) == 1
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["device_id"], r["state"]) for r in rows] == [("room-2", "offline"), ("room-3", "online"),
                                                           ("room-4", "silent")]
    assert rows[1]["status"]["alerts"][0]["key"] == "panel-pin-lockouts"
