"""Identity at the broker (shipped config, ACL and PKI scripts, a real Mosquitto): a client id is
the name on the certificate, so no certificate can take over another client's session; the
clinic's one-shot tools have a name of their own; a device configured under another id or site
than its certificate's is told so and its visits still arrive once that is fixed; a revoked
certificate is refused."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from clinic.server import ClinicServer
from tests.broker import (
    Broker,
    Device,
    Pki,
    Raw,
    assert_same_at_clinic,
    clinic_config,
    clinic_toml,
    make_finished_sessions,
    refused,
    wait_until,
)

pytestmark = pytest.mark.slow  # a browser, a broker or a daemon process: make check leaves it to make test

# The broker keeps no transcript for an absent clinic server (it takes them at QoS 0): the device
# resends what was published while the server was away.
QUICK_RESEND = {"ack_timeout_s": 1.0, "backoff_max_s": 2.0}


class Clinic:
    """The clinic server, counting every time the broker drops its connection."""

    def __init__(self, pki: Pki, broker: Broker, db: Path) -> None:
        self.server = ClinicServer(clinic_config(pki, broker, db)).start()
        self.drops: list[str] = []
        on_disconnect = self.server.client.on_disconnect

        def counting(*args: object) -> None:
            self.drops.append(str(args[3]))
            on_disconnect(*args)

        self.server.client.on_disconnect = counting
        assert self.server.connected.wait(10), broker.log

    def stop(self) -> None:
        self.server.client.on_disconnect = None  # its own clean disconnect is no drop
        self.server.stop()


def queue_at_broker(dev: Device, count: int) -> list[str]:
    """`count` visits published by the device while the clinic server is stopped."""
    ids = make_finished_sessions(dev.store, count, segments=4)
    dev.sync.wake()
    wait_until(lambda: all(dev.store.outbox_items(i)[0].attempts >= 1 for i in ids), 10, "published")
    time.sleep(0.5)  # the PUBACKs: the broker holds them now
    return ids


def test_no_certificate_can_take_over_the_clinic_servers_session(pki: Pki, broker: Broker, tmp_path: Path) -> None:
    clinic = Clinic(pki, broker, tmp_path / "clinic.db")
    their_ids = (clinic.server.cfg.mqtt.client_id, "clinic-server")
    try:
        for client_id in their_ids:  # dev-b asks for the running server's client id
            thief = Raw(broker, pki, "dev-b", client_id=client_id)
            time.sleep(0.5)
            thief.close()
        assert clinic.drops == [], clinic.drops  # the server was never kicked off
    finally:
        clinic.stop()
    with Device(pki, broker, tmp_path / "dev", **QUICK_RESEND) as dev:
        ids = queue_at_broker(dev, 3)  # published while the clinic is stopped
        for client_id in their_ids:  # a clean start under its id would wipe its session
            Raw(broker, pki, "dev-b", client_id=client_id).close()
        time.sleep(0.5)
        clinic = Clinic(pki, broker, tmp_path / "clinic.db")
        try:
            wait_until(lambda: dev.synced(ids), 15, "queued transcripts delivered to the clinic")
            for sid in ids:
                assert_same_at_clinic(dev.store, clinic.server.repo, sid, 1)
        finally:
            clinic.stop()
    assert "already connected, closing old connection" not in broker.log


def test_no_certificate_can_take_over_a_rooms_session(pki: Pki, broker: Broker, tmp_path: Path) -> None:
    clinic = Clinic(pki, broker, tmp_path / "clinic.db")
    try:
        with Device(pki, broker, tmp_path / "dev") as dev:
            [sid] = make_finished_sessions(dev.store, 1, segments=3)
            dev.sync.wake()
            wait_until(lambda: dev.synced([sid]), 15, "synced")
            Raw(broker, pki, "dev-b", client_id="dev-a").close()  # while dev-a is online
            time.sleep(0.5)
            assert dev.sync.status()["connected"]
        # dev-a is off: a note for it waits at the broker; dev-b's clean start under "dev-a" would wipe it.
        clinic.server.send_note("site1", "dev-a", sid, 1, "SOAP", "S: dry cough.").wait_for_publish(5)
        Raw(broker, pki, "dev-b", client_id="dev-a").close()
        with Device(pki, broker, tmp_path / "dev") as dev:
            wait_until(lambda: dev.store.note_count(sid) == 1, 10, "the note queued for the room")
        assert clinic.drops == []
    finally:
        clinic.stop()
    assert "already connected, closing old connection" not in broker.log


def run_tool(toml: Path, *args: str) -> subprocess.CompletedProcess[str]:
    clinic_exe = Path(sys.executable).parent / "clinic"
    return subprocess.run([str(clinic_exe), "--config", str(toml), *args], capture_output=True, text=True,
                          timeout=60)


def test_one_shot_tools_neither_kick_the_server_nor_take_its_transcripts(
    pki: Pki, broker: Broker, tmp_path: Path
) -> None:
    toml = tmp_path / "clinic.toml"
    toml.write_text(clinic_toml(pki, broker, tmp_path / "clinic.db"))
    clinic = Clinic(pki, broker, tmp_path / "clinic.db")
    try:
        with Device(pki, broker, tmp_path / "dev", **QUICK_RESEND) as dev:
            [sid] = make_finished_sessions(dev.store, 1, segments=3)
            dev.sync.wake()
            wait_until(lambda: dev.synced([sid]), 15, "synced")
            r = run_tool(toml, "note", "--site", "site1", "--device", "dev-a", "--session", sid, "--revision", "1",
                         "--template", "SOAP", "--text", "S: dry cough.")
            assert r.returncode == 0, r.stderr
            wait_until(lambda: dev.store.note_count(sid) == 1, 10, "note from the tool")
            time.sleep(0.5)
            assert clinic.drops == [], clinic.drops  # the running server stayed connected
            clinic.stop()
            # Server down: a tool run now must not take its session (nor the transcripts resent to it).
            ids = queue_at_broker(dev, 5)
            r = run_tool(toml, "command", "resend", "--site", "site1", "--device", "dev-b", "--session", sid)
            assert r.returncode == 0, r.stderr
            clinic = Clinic(pki, broker, tmp_path / "clinic.db")
            wait_until(lambda: dev.synced(ids), 15, "all 5 queued transcripts reach the server")
            assert clinic.server.repo.count() == 6
    finally:
        clinic.stop()
    assert "clinic-tools" in broker.log  # the tools connected under their own certificate's name


def test_device_id_not_matching_its_certificate_is_shown_and_its_visits_delivered_once_fixed(
    pki: Pki, broker: Broker, tmp_path: Path
) -> None:
    clinic = Clinic(pki, broker, tmp_path / "clinic.db")
    try:
        # Provisioned with dev-a's certificate, configured as "room-9": every publish is denied.
        with Device(pki, broker, tmp_path / "dev", device_id="room-9", cert="dev-a") as dev:
            ids = make_finished_sessions(dev.store, 2, segments=3, device_id="room-9")
            dev.sync.wake()
            wait_until(lambda: "refuses" in dev.sync.status()["last_error"], 10, "refusal shown")
            status = dev.sync.status()
            assert not status["connected"] and status["pending"] == 2
            assert 'id "room-9"' in status["last_error"] and '"dev-a"' in status["last_error"]
            assert "Denied PUBLISH from dev-a" in broker.log  # the broker's refusal, not a guess
        assert clinic.server.repo.count() == 0
        # The id is corrected: the visits recorded as room-9 go out as dev-a.
        with Device(pki, broker, tmp_path / "dev", device_id="dev-a") as dev:
            dev.sync.wake()
            wait_until(lambda: dev.synced(ids), 15, "delivered after the fix")
            for sid in ids:
                assert dev.store.get_session(sid).device_id == "dev-a"
                assert_same_at_clinic(dev.store, clinic.server.repo, sid, 1)
                assert any(e.action == "readdress" for e in dev.store.audit_events(sid))
            status = dev.sync.status()
            assert status["connected"] and status["last_error"] == ""
    finally:
        clinic.stop()


def test_a_device_publishes_only_under_the_site_of_its_certificate(pki: Pki, broker: Broker, tmp_path: Path) -> None:
    clinic = Clinic(pki, broker, tmp_path / "clinic.db")
    try:
        # dev-a's certificate was issued for site1; configured for site2, the broker denies its messages.
        with Device(pki, broker, tmp_path / "dev", site="site2") as dev:
            ids = make_finished_sessions(dev.store, 2, segments=3, site="site2")
            dev.sync.wake()
            wait_until(lambda: "refuses" in dev.sync.status()["last_error"], 10, "refusal shown")
            error = dev.sync.status()["last_error"]
            assert 'site "site2"' in error and '("site1")' in error, error
        assert "Denied PUBLISH from dev-a (d0, q1, r0, m" in broker.log and "'scribe/site2/dev-a/" in broker.log
        assert clinic.server.repo.count() == 0
        with Device(pki, broker, tmp_path / "dev") as dev:  # the site corrected: the queued visits go out
            dev.sync.wake()
            wait_until(lambda: dev.synced(ids), 15, "delivered under the certificate's site")
            for sid in ids:
                assert dev.store.get_session(sid).site == "site1"
                assert_same_at_clinic(dev.store, clinic.server.repo, sid, 1)
    finally:
        clinic.stop()


def test_revoked_device_certificate_is_refused(pki: Pki, broker: Broker) -> None:
    pki.issue("device", "dev-lost")
    assert not refused(broker, pki, "dev-lost")  # issued and accepted
    assert "user dev-lost" in pki.acl()
    out = pki.revoke("dev-lost")
    assert "revoked: CN=dev-lost,OU=site1" in out and "1 revoked" in out
    assert "user dev-lost" not in pki.acl()  # nor does the next ACL give it any topic
    broker.restart()  # mosquitto reads the CRL at start
    assert refused(broker, pki, "dev-lost")
    assert not refused(broker, pki, "dev-a")  # the others still get in
    assert "already revoked" in pki.revoke("dev-lost")  # idempotent
