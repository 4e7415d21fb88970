"""The clinic server on a real Mosquitto (shipped config, TLS, ACL) with real devices: a flooding
device does not hold back another room, and the broker's persistence file never holds a transcript."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from clinic.server import ClinicServer
from tests.broker import (
    WORDS,
    Broker,
    Device,
    Pki,
    Raw,
    assert_same_at_clinic,
    clinic_config,
    make_finished_sessions,
    wait_until,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def clinic_log() -> Iterator[io.StringIO]:
    """Everything the clinic logs, as the journal would get it."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("clinic")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield out
    logger.removeHandler(handler)
    logger.setLevel(level)


_GOOD = {"schema": "scribe.transcript/1", "session_id": "0190aaaa-0000-7000-8000-000000000001", "revision": 1,
         "device_id": "dev-b", "site": "site1", "room": "x", "clinician": "x", "name": "x", "started_at": 1.0,
         "ended_at": 2.0, "templates": [], "consent": True, "models": [], "speakers": {},
         "segments": [{"id": "0190aaaa-0000-7000-8000-000000000002", "start": 0, "end": 1, "speaker": "S1",
                       "text": "hello"}]}
BAD = [
    b'{"schema": "scribe.transcript/1", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # deeply nested
    json.dumps({**_GOOD, "segments": [{**_GOOD["segments"][0], "start": float("nan")}]}).encode(),  # NaN time
    json.dumps({**_GOOD, "revision": 2**64}).encode(),  # huge revision
]


def test_a_flooding_device_does_not_hold_back_another_rooms_visits(
    pki: Pki, broker: Broker, tmp_path: Path, clinic_log: io.StringIO
) -> None:
    server = ClinicServer(clinic_config(pki, broker, tmp_path / "clinic.db")).start()
    stop = threading.Event()
    sent = [0]
    assert server.connected.wait(10), broker.log
    flooder = Raw(broker, pki, "dev-b")  # dev-b's own certificate: the ACL lets it publish on its topics

    def flood() -> None:  # dev-b: bad messages at ~100/s, as in the field report
        while not stop.wait(0.01):
            flooder.client.publish("scribe/site1/dev-b/transcript", BAD[sent[0] % len(BAD)], qos=1)
            sent[0] += 1

    flood_thread = threading.Thread(target=flood, daemon=True)
    try:
        flood_thread.start()
        wait_until(lambda: sent[0] >= 100, 30, "a second of the flood")
        # dev-a resends only after 60 s: every visit must get through on its first send.
        with Device(pki, broker, tmp_path / "dev-a", ack_timeout_s=60.0, backoff_max_s=60.0) as dev:
            ids = make_finished_sessions(dev.store, 20, segments=30)
            dev.sync.wake()
            wait_until(lambda: dev.synced(ids), 45, "dev-a's 20 visits acked during the flood")
            # ... and the flood went on after them: they were taken in the middle of it.
            dropped_at_sync = server.ingest.stats.dropped
            wait_until(lambda: server.ingest.stats.dropped >= dropped_at_sync + 50, 30, "the flood going on")
            for sid in ids:
                assert server.repo.deliveries(sid, 1) == 1  # no batch was dropped and resent
                assert_same_at_clinic(dev.store, server.repo, sid, 1)
    finally:
        stop.set()
        flood_thread.join(5)
        flooder.close()
        server.stop()
    assert server.ingest.stats.stored == 20 and server.ingest.stats.dropped >= 150
    text = clinic_log.getvalue()
    # The flood is one line (plus a count once a minute), not a traceback per batch.
    assert "Traceback" not in text
    assert sum("dev-b" in line for line in text.splitlines()) <= 2, text[:3000]
    assert len(text) < 5_000, text[:3000]


def test_broker_persistence_never_holds_a_transcript_and_nothing_is_lost(
    pki: Pki, broker: Broker, tmp_path: Path
) -> None:
    cfg = clinic_config(pki, broker, tmp_path / "clinic.db")
    server = ClinicServer(cfg).start()
    assert server.connected.wait(10), broker.log
    server.stop()  # the clinic goes away; its persistent session and subscriptions stay at the broker
    with Device(pki, broker, tmp_path / "dev-a", ack_timeout_s=1.0, backoff_max_s=2.0) as dev:
        ids = make_finished_sessions(dev.store, 5, segments=30)
        dev.sync.wake()
        wait_until(lambda: sum("Received PUBLISH from dev-a" in line and "/transcript'" in line
                               for line in broker.log.splitlines()) >= 2 * len(ids), 30,
                   "the broker accepting the device's transcripts (sent and resent)")
        broker.stop()  # SIGTERM: the broker writes everything it holds to mosquitto.db
        db = broker.dir / "mosquitto.db"
        assert db.exists(), "the broker wrote no persistence file"
        content = db.read_bytes()
        for marker in (" ".join(WORDS[:4]).encode(), b'"segments"', ids[0].encode()):
            assert marker not in content, f"{marker!r} is in mosquitto.db"
        broker.start()
        server = ClinicServer(cfg).start()
        try:
            wait_until(lambda: dev.synced(ids), 30, "every visit acked after the clinic's return")
            for sid in ids:
                assert_same_at_clinic(dev.store, server.repo, sid, 1)
        finally:
            server.stop()


def test_a_failing_store_acks_nothing_logs_once_and_delivers_after_recovery(
    pki: Pki, broker: Broker, tmp_path: Path, clinic_log: io.StringIO
) -> None:
    server = ClinicServer(clinic_config(pki, broker, tmp_path / "clinic.db")).start()
    try:
        assert server.connected.wait(10), broker.log
        with server.repo._lock:  # the store refuses every write, as on a full or read-only disk
            server.repo._db.execute("PRAGMA query_only = ON")
        with Device(pki, broker, tmp_path / "dev-a", ack_timeout_s=0.5, backoff_max_s=1.0) as dev:
            ids = make_finished_sessions(dev.store, 5, segments=10)
            dev.sync.wake()
            wait_until(lambda: all(dev.store.outbox_items(i)[0].attempts >= 3 for i in ids), 30,
                       "the device resending several times")
            assert dev.store.pending_count() == 5 and server.repo.count() == 0  # nothing acked
            with server.repo._lock:
                server.repo._db.execute("PRAGMA query_only = OFF")
            wait_until(lambda: dev.synced(ids), 30, "every visit acked once the store writes again")
            for sid in ids:
                assert_same_at_clinic(dev.store, server.repo, sid, 1)
    finally:
        server.stop()
    text = clinic_log.getvalue()
    assert text.count("could not store a batch") == 1 and text.count("Traceback") == 1, text[:3000]
