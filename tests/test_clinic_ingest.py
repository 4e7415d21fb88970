"""The clinic's ingest and storage without a broker: dedupe, identity, chunk limits, CLI."""

from __future__ import annotations

import json
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
from tests.conftest import Clock

TOPIC = "scribe/site1/dev-a/transcript"


@pytest.fixture
def repo(tmp_path: Path) -> SqliteTranscriptStore:
    return SqliteTranscriptStore(str(tmp_path / "clinic.db"))


def payload(store: SessionStore, segments: int = 3) -> dict:
    [sid] = make_finished_sessions(store, 1, segments=segments)
    return build_payload(store, sid, 1, [])


def test_same_revision_twice_is_stored_once_and_acked_twice(store: SessionStore, repo: SqliteTranscriptStore) -> None:
    ingest = Ingest("scribe", repo, IngestConfig())
    p = payload(store)
    data = protocol.encode(p)
    acks = ingest.handle_batch([(TOPIC, data), (TOPIC, data)]) + ingest.handle_batch([(TOPIC, data)])
    assert [(t, a["status"]) for t, a in acks] == [("scribe/site1/dev-a/ack", s)
                                                   for s in ("stored", "duplicate", "duplicate")]
    assert repo.count() == 1 and repo.deliveries(p["session_id"], 1) == 3
    assert repo.get(p["session_id"], 1) == p  # rebuilt exactly as sent


def test_another_device_cannot_write_into_a_session(store: SessionStore, repo: SqliteTranscriptStore) -> None:
    ingest = Ingest("scribe", repo, IngestConfig())
    p = payload(store)
    ingest.handle_batch([(TOPIC, protocol.encode(p))])
    forged = {**p, "device_id": "dev-b", "revision": 2}
    [(topic, ack)] = ingest.handle_batch([("scribe/site1/dev-b/transcript", protocol.encode(forged))])
    assert topic == "scribe/site1/dev-b/ack" and ack["status"] == "rejected" and "another device" in ack["error"]
    assert repo.count() == 1


def test_chunk_limits_and_expiry(store: SessionStore, repo: SqliteTranscriptStore, clock: Clock) -> None:
    now = [0.0]
    ingest = Ingest("scribe", repo, IngestConfig(max_partial_bytes=100_000, chunk_timeout_s=60),
                    clock=lambda: now[0])
    p = payload(store, segments=200)
    data = protocol.encode(p)
    parts = protocol.chunk(data, p["session_id"], 1, 8192)
    assert len(parts) > 3
    assert ingest.handle_batch([(TOPIC, m) for m in parts[:-1]]) == []  # incomplete: no ack yet
    now[0] = 61.0  # expired: the partial set is dropped, the last part alone completes nothing
    assert ingest.handle_batch([(TOPIC, parts[-1])]) == []
    assert repo.count() == 0
    acks = ingest.handle_batch([(TOPIC, m) for m in reversed(parts)])  # resent, any order
    assert [a["status"] for _, a in acks] == ["stored"] and repo.get(p["session_id"], 1) == p
    # Reassembly memory is bounded: a set bigger than max_partial_bytes never completes.
    small = Ingest("scribe", repo, IngestConfig(max_partial_bytes=100_000, max_transcript_bytes=20_000))
    assert small.handle_batch([(TOPIC, m) for m in parts]) == []
    assert small.stats.dropped >= 1 and small._partial_bytes <= 100_000


def test_clinic_cli_lists_and_shows(store: SessionStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "clinic.db"
    repo = SqliteTranscriptStore(str(db))
    p = payload(store)
    Ingest("scribe", repo, IngestConfig()).handle_batch([(TOPIC, protocol.encode(p))])
    repo.close()
    cfg = tmp_path / "clinic.toml"
    cfg.write_text(f'[store]\npath = "{db}"\n')
    assert cli.main(["--config", str(cfg), "sessions", "list", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert (row["session_id"], row["revision"], row["segments"], row["deliveries"]) == (p["session_id"], 1, 3, 1)
    assert cli.main(["--config", str(cfg), "sessions", "show", p["session_id"]]) == 0
    assert json.loads(capsys.readouterr().out) == p
    assert cli.main(["--config", str(cfg), "sessions", "show", "nope"]) == 1
    cfg.write_text("[store]\npaht = 1\n")
    assert cli.main(["--config", str(cfg), "sessions", "list"]) == 2
    assert "store.paht: unknown key" in capsys.readouterr().err
    assert cli.main(["config", "show"]) == 0
    assert "max_message_bytes = 262144" in capsys.readouterr().out
