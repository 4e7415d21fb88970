"""The shipped broker config and ACL against a real Mosquitto: identity from the certificate,
each device confined to its own topics, bad messages dropped without crashing anything."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.store import open_store
from appliance.sync.payload import build_payload
from clinic.server import ClinicServer
from common import protocol
from tests.broker import Broker, Pki, Raw, make_finished_sessions, make_pki, refused, running_clinic, wait_until

pytestmark = pytest.mark.slow  # a browser, a broker or a daemon process: make check leaves it to make test


@pytest.fixture(scope="module")
def broker(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with Broker(pki, tmp_path_factory.mktemp("broker")) as b:
        yield b


@pytest.fixture
def clinic(pki: Pki, broker: Broker, tmp_path: Path) -> Iterator[ClinicServer]:
    # Clinic limit below the broker's, so an oversized message reaches the clinic and must be dropped there.
    with running_clinic(pki, broker, tmp_path / "clinic.db", max_message_bytes=131_072) as server:
        assert server.connected.wait(10)
        yield server


def test_client_without_a_certificate_is_refused(pki: Pki, broker: Broker) -> None:
    assert refused(broker, pki, None)
    assert not refused(broker, pki, "dev-a")  # positive control: the same path with a certificate works


def test_certificate_from_another_ca_is_refused(pki: Pki, broker: Broker, tmp_path: Path) -> None:
    rogue = make_pki(tmp_path / "rogue", devices=("dev-a",))  # same device name, wrong CA
    assert refused(broker, pki, "dev-a", cert_dir=rogue.dir)


def test_device_cannot_read_another_devices_notes_or_publish_as_it(
    pki: Pki, broker: Broker, clinic: ClinicServer, tmp_path: Path
) -> None:
    a, b = Raw(broker, pki, "dev-a"), Raw(broker, pki, "dev-b")
    assert a.accepted and b.accepted
    try:
        b.client.subscribe("scribe/site1/dev-b/note", qos=1)
        a.client.subscribe([("scribe/site1/dev-b/note", 1), ("scribe/#", 1), ("#", 1)])  # all denied or filtered
        time.sleep(0.5)
        clinic.send_note("site1", "dev-b", "0190aaaa-0000-7000-8000-000000000001", 1, "SOAP",
                         "for dev-b only").wait_for_publish(5)
        topic, data = b.received.get(timeout=5)  # positive control: B gets its note
        assert topic == "scribe/site1/dev-b/note" and json.loads(data)["text"] == "for dev-b only"
        time.sleep(1.0)
        leaked = [t for t, _ in a.drain() if "dev-b" in t]
        assert not leaked, leaked

        store = open_store(str(tmp_path / "a.db"))
        [sid] = make_finished_sessions(store, 1, segments=3, device_id="dev-b")
        data = protocol.prepare_transcript(build_payload(store, sid, 1, []), 1_000_000)
        store.close()
        # A publishes B's transcript under B's topic: the broker drops it (ACL), the clinic never sees it.
        a.publish("scribe/site1/dev-b/transcript", data)
        # Nor can A send commands or notes to B, or acks to itself.
        a.publish("scribe/site1/dev-b/command", b'{"schema":"scribe.command/1"}')
        a.publish("scribe/site1/dev-a/ack", b'{"schema":"scribe.ack/1"}')
        # On its own topic A may publish, but a payload claiming B's identity is refused by the clinic.
        a.publish("scribe/site1/dev-a/transcript", data)
        wait_until(lambda: clinic.ingest.stats.dropped >= 1, 10, "forged identity dropped")
        # Positive control: the same transcript from B itself is stored.
        b.publish("scribe/site1/dev-b/transcript", data)
        wait_until(lambda: clinic.repo.count() == 1, 10, "B's own transcript stored")
        time.sleep(0.5)
        assert [(s.session_id, s.device_id, s.deliveries) for s in clinic.repo.list()] == [(sid, "dev-b", 1)]
        assert clinic.ingest.stats.dropped == 1
        log = broker.log
        assert "Denied PUBLISH from dev-a" in log and "scribe/site1/dev-b/transcript" in log, log[-2000:]
    finally:
        a.close()
        b.close()


def test_malformed_and_oversized_messages_are_logged_and_dropped(
    pki: Pki, broker: Broker, clinic: ClinicServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a = Raw(broker, pki, "dev-a")
    try:
        a.client.subscribe("scribe/site1/dev-a/ack", qos=1)
        time.sleep(0.3)
        store = open_store(str(tmp_path / "a.db"))
        [sid] = make_finished_sessions(store, 1, segments=3)
        good = build_payload(store, sid, 1, [])
        store.close()
        bad_messages = [
            b"\x00\xff binary garbage",
            b"{not json",
            b'{"schema": "scribe.transcript/9"}',
            json.dumps({**good, "audio": "UklGRiQAAABXQVZF"}).encode(),  # the schema has no room for audio
            json.dumps({**good, "segments": "nope"}).encode(),
            b'{"schema": "scribe.chunk/1", "session_id": "x"}',
            json.dumps({**good, "pad": "x" * 200_000}).encode(),  # above the clinic's limit, below the broker's
        ]
        for data in bad_messages:
            a.publish("scribe/site1/dev-a/transcript", data)
        a.publish("scribe/site1/dev-a/status", b"[]")
        # Then a valid one: the clinic is still up and stores it.
        a.publish("scribe/site1/dev-a/transcript", protocol.encode(good))
        wait_until(lambda: clinic.repo.count() == 1, 10, "valid transcript after the bad ones")
        assert clinic.ingest.stats.dropped == len(bad_messages) + 1
        wait_until(lambda: a.received.qsize() >= 3, 5, "acks")
        time.sleep(0.3)
        acks = [json.loads(d) for _, d in a.drain()]
        # Bad payloads whose session and revision are known get a "rejected" ack.
        assert sorted(x["status"] for x in acks) == ["rejected", "rejected", "stored"], acks
        assert "dropped message on scribe/site1/dev-a/transcript" in caplog.text
        # Above the broker's max_packet_size: the broker cuts that client off; the clinic carries on.
        disconnects = a.disconnects
        a.client.publish("scribe/site1/dev-a/transcript", b"x" * 300_000, qos=1)
        wait_until(lambda: a.disconnects > disconnects, 10, "oversized publisher disconnected")
        assert clinic.connected.is_set() and clinic.repo.count() == 1
    finally:
        a.close()


def test_pki_scripts_refuse_to_overwrite_a_ca_and_bad_names(pki: Pki) -> None:
    from tests.broker import PKI

    r = subprocess.run([str(PKI / "make-ca.sh"), str(pki.dir)], capture_output=True, text=True)
    assert r.returncode != 0 and "refusing" in r.stderr
    r = subprocess.run([str(PKI / "make-cert.sh"), str(pki.dir), str(pki.dir), "device", "dev/../x"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    out = subprocess.run(["openssl", "x509", "-in", str(pki.cert("dev-a")), "-noout", "-subject", "-ext",
                          "extendedKeyUsage"], capture_output=True, text=True, check=True).stdout
    assert "CN = dev-a" in out and "TLS Web Client Authentication" in out
