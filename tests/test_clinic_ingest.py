"""The clinic's ingest and storage without a broker: dedupe, identity, per-message validation,
text only, chunk limits, CLI; each on the SQLite and the PostgreSQL store."""

from __future__ import annotations

import base64
import io
import json
import logging
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from appliance.store import SessionStore
from appliance.sync.payload import build_payload
from clinic import cli
from clinic.config import IngestConfig
from clinic.ingest import Ingest
from clinic.store import TranscriptStore
from common import protocol
from tests.broker import make_finished_sessions
from tests.conftest import Clock
from tests.postgres import ClinicStoreTarget
from tests.speech import RATE, espeak

TOPIC = "scribe/site1/dev-a/transcript"


@pytest.fixture
def repo(clinic_store: ClinicStoreTarget) -> Iterator[TranscriptStore]:
    """Every test here runs on SQLite and on PostgreSQL."""
    repo = clinic_store.open()
    yield repo
    repo.close()


def payload(store: SessionStore, segments: int = 3) -> dict:
    [sid] = make_finished_sessions(store, 1, segments=segments)
    return build_payload(store, sid, 1, [])


@pytest.mark.slow
def test_same_revision_twice_is_stored_once_and_acked_twice(store: SessionStore, repo: TranscriptStore) -> None:
    ingest = Ingest("scribe", repo, IngestConfig())
    p = payload(store)
    data = protocol.encode(p)
    acks = ingest.handle_batch([(TOPIC, data), (TOPIC, data)]) + ingest.handle_batch([(TOPIC, data)])
    assert [(t, a["status"]) for t, a in acks] == [("scribe/site1/dev-a/ack", s)
                                                   for s in ("stored", "duplicate", "duplicate")]
    assert repo.count() == 1 and repo.deliveries(p["session_id"], 1) == 3
    assert repo.get(p["session_id"], 1) == p  # rebuilt exactly as sent


def test_another_device_cannot_write_into_a_session(store: SessionStore, repo: TranscriptStore) -> None:
    ingest = Ingest("scribe", repo, IngestConfig())
    p = payload(store)
    ingest.handle_batch([(TOPIC, protocol.encode(p))])
    forged = {**p, "device_id": "dev-b", "revision": 2}
    [(topic, ack)] = ingest.handle_batch([("scribe/site1/dev-b/transcript", protocol.encode(forged))])
    assert topic == "scribe/site1/dev-b/ack" and ack["status"] == "rejected" and "another device" in ack["error"]
    assert repo.count() == 1


def test_chunk_limits_and_expiry(store: SessionStore, repo: TranscriptStore, clock: Clock) -> None:
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


def test_clinic_cli_lists_and_shows(store: SessionStore, clinic_store: ClinicStoreTarget, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    repo = clinic_store.open()
    p = payload(store)
    Ingest("scribe", repo, IngestConfig()).handle_batch([(TOPIC, protocol.encode(p))])
    repo.close()
    cfg = tmp_path / "clinic.toml"
    cfg.write_text(clinic_store.toml())
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


# -- one bad message costs only itself (issue 10) -------------------------------------------------

def _bad_messages(store: SessionStore) -> dict[str, bytes]:
    """What a misbehaving dev-b sent: each of these stopped the whole batch before."""
    good = payload(store)
    nan_time = json.loads(json.dumps(good))
    nan_time["segments"][0]["start"] = float("nan")
    infinite_start = {**good, "started_at": float("inf")}
    huge_revision = {**good, "revision": 2**64}
    huge_number = json.loads(json.dumps(good))
    huge_number["segments"][1]["end"] = 10**30
    for p in (nan_time, infinite_start, huge_revision, huge_number):
        p["device_id"] = "dev-b"
    return {
        "deeply nested": b'{"schema": "scribe.transcript/1", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "NaN time": json.dumps(nan_time).encode(),
        "Infinity time": json.dumps(infinite_start).encode(),
        "huge revision": json.dumps(huge_revision).encode(),
        "huge number": json.dumps(huge_number).encode(),
        "1e999 time": json.dumps({**good, "device_id": "dev-b", "ended_at": 1.5}).encode().replace(b"1.5", b"1e999"),
        "5,000-digit number": b'{"schema": "scribe.status/1", "ts": ' + b"9" * 5000 + b"}",
    }


@pytest.mark.parametrize("bad", ["deeply nested", "NaN time", "Infinity time", "huge revision", "huge number",
                                 "1e999 time", "5,000-digit number"])
def test_a_bad_message_is_dropped_and_the_rest_of_the_batch_is_stored(
    store: SessionStore, repo: TranscriptStore, bad: str
) -> None:
    ingest = Ingest("scribe", repo, IngestConfig())
    first, second = payload(store), payload(store)
    batch = [(TOPIC, protocol.encode(first)), ("scribe/site1/dev-b/transcript", _bad_messages(store)[bad]),
             (TOPIC, protocol.encode(second))]
    if bad == "5,000-digit number":
        batch[1] = ("scribe/site1/dev-b/status", batch[1][1])
    acks = ingest.handle_batch(batch)
    stored = [(t, a["session_id"]) for t, a in acks if a["status"] == "stored"]
    assert stored == [("scribe/site1/dev-a/ack", first["session_id"]), ("scribe/site1/dev-a/ack", second["session_id"])]
    refused = [(t, a["status"], a["revision"]) for t, a in acks if a["status"] != "stored"]
    assert all(t == "scribe/site1/dev-b/ack" and s == "rejected" and 1 <= r <= protocol.MAX_REVISION
               for t, s, r in refused), refused
    assert ingest.stats.stored == 2 and ingest.stats.dropped == 1
    assert repo.count() == 2 and repo.get(first["session_id"], 1) == first


def test_revision_bound_is_the_schemas() -> None:
    for kind in ("transcript", "chunk"):
        assert protocol._schema(kind)["properties"]["revision"]["maximum"] == protocol.MAX_REVISION


def test_warnings_are_rate_limited_per_device_with_a_summary(
    store: SessionStore, repo: TranscriptStore, caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    ingest = Ingest("scribe", repo, IngestConfig(log_interval_s=60), clock=lambda: now[0])
    bad = _bad_messages(store)
    caplog.set_level(logging.INFO, logger="clinic")
    for _ in range(50):  # one second of dev-b at 100 bad messages/s, in batches as the server takes them
        ingest.handle_batch([("scribe/site1/dev-b/transcript", m) for m in bad.values()])
        now[0] += 0.5
    ingest.handle_batch([("scribe/site1/dev-c/transcript", bad["NaN time"])])  # another device: its own line
    now[0] += 60
    ingest.handle_batch([])  # the interval is over: one summary line per device
    lines = [r.getMessage() for r in caplog.records]
    assert ingest.stats.dropped == 50 * len(bad) + 1
    assert sum("dev-b" in ln for ln in lines) == 2, lines  # the first warning and the summary
    assert any(ln.startswith(f"dev-b: {50 * len(bad) - 1} more messages dropped") for ln in lines), lines
    assert sum("dev-c" in ln for ln in lines) == 1
    assert sum(len(ln) for ln in lines) < 2_000


# -- text only: the clinic refuses what the device would never send ------------------------------

def _wav_bytes(seconds: float) -> bytes:
    speech = espeak("the patient reports a dry cough for three days and some chest tightness at night")
    samples = np.resize(speech, int(seconds * RATE))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((samples * 32767).astype("<i2").tobytes())
    return buf.getvalue()


@pytest.mark.parametrize("encoding", ["base64", "base64 in 76-character lines"])
def test_clinic_refuses_base64_audio_in_segment_text(
    store: SessionStore, repo: TranscriptStore, encoding: str
) -> None:
    wav = _wav_bytes(3.6)
    blob = (base64.b64encode(wav) if encoding == "base64" else base64.encodebytes(wav)).decode("ascii")
    assert len(blob) > 150_000 and base64.b64decode(blob)[:4] == b"RIFF"
    p = payload(store, segments=8)
    pieces = [blob[i:i + 19_000] for i in range(0, len(blob), 19_000)]  # each within the 20,000-character text
    p["segments"] = [{**p["segments"][i % 8], "text": f"words {piece} words"} for i, piece in enumerate(pieces)]
    for i, seg in enumerate(p["segments"]):
        seg["id"] = f"{seg['id'][:-4]}{i:04x}"
    protocol.validate("transcript", p)  # the schema alone lets it through: it is "just text"
    data = protocol.encode(p)
    ingest = Ingest("scribe", repo, IngestConfig(max_message_bytes=len(data)))
    [(topic, ack)] = ingest.handle_batch([(TOPIC, data)])
    assert (topic, ack["status"]) == ("scribe/site1/dev-a/ack", "rejected")
    assert "encoded blob" in ack["error"] and "/segments/" in ack["error"]
    assert repo.count() == 0
    with pytest.raises(protocol.PayloadRefused):  # the very check the device runs before sending
        protocol.prepare_transcript(p, 10**9)


# -- chunk reassembly: one device cannot evict another's partial transcript ----------------------

@pytest.mark.slow
def test_a_flooding_device_cannot_evict_another_devices_partial_transcript(
    store: SessionStore, repo: TranscriptStore
) -> None:
    now = [0.0]
    cfg = IngestConfig(max_partial_bytes=200_000, max_partial_bytes_per_device=60_000, max_partials_per_device=3)
    ingest = Ingest("scribe", repo, cfg, clock=lambda: now[0])
    mine = payload(store, segments=200)
    parts = protocol.chunk(protocol.encode(mine), mine["session_id"], 1, 8192)
    assert ingest.handle_batch([(TOPIC, m) for m in parts[:-1]]) == []  # dev-a's set, one part missing
    # dev-b then starts many sets and finishes none (each a real chunk set of its own visits).
    for _ in range(12):
        now[0] += 1
        other = {**payload(store, segments=100), "device_id": "dev-b"}
        chunks = protocol.chunk(protocol.encode(other), other["session_id"], 1, 8192)
        assert ingest.handle_batch([("scribe/site1/dev-b/transcript", m) for m in chunks[:-1]]) == []
        held_by_b = [p for k, p in ingest._partials.items() if k[0] == "dev-b"]
        assert len(held_by_b) <= 3 and sum(p.size for p in held_by_b) <= 60_000
    assert ingest._partial_bytes <= 200_000
    [(_, ack)] = ingest.handle_batch([(TOPIC, parts[-1])])  # dev-a's last part still completes its set
    assert ack["status"] == "stored" and repo.get(mine["session_id"], 1) == mine


def test_over_the_global_bound_the_biggest_holder_pays(store: SessionStore, repo: TranscriptStore) -> None:
    now = [0.0]
    cfg = IngestConfig(max_partial_bytes=100_000, max_partial_bytes_per_device=80_000, max_partials_per_device=16)
    ingest = Ingest("scribe", repo, cfg, clock=lambda: now[0])
    mine = payload(store, segments=100)
    parts = protocol.chunk(protocol.encode(mine), mine["session_id"], 1, 8192)
    ingest.handle_batch([(TOPIC, m) for m in parts[:-1]])
    for device in ("dev-b", "dev-c"):  # two devices together exceed the global bound
        for _ in range(3):
            now[0] += 1
            other = {**payload(store, segments=100), "device_id": device}
            chunks = protocol.chunk(protocol.encode(other), other["session_id"], 1, 8192)
            ingest.handle_batch([(f"scribe/site1/{device}/transcript", m) for m in chunks[:-1]])
    assert ingest._partial_bytes <= 100_000
    [(_, ack)] = ingest.handle_batch([(TOPIC, parts[-1])])
    assert ack["status"] == "stored"
