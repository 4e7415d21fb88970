"""Device sync ↔ real Mosquitto (TLS, client certificates, the shipped ACL) ↔ clinic server.

The device side runs in-process (SyncService in a thread, as the daemon's supervisor runs it);
the daemon process itself is exercised in test_sync_faults.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from appliance.store import State
from clinic.server import ClinicServer
from tests.broker import (
    Broker,
    Device,
    Pki,
    assert_same_at_clinic,
    make_finished_sessions,
    running_clinic,
    wait_until,
)

pytestmark = pytest.mark.slow  # a browser, a broker or a daemon process: make check leaves it to make test


def test_queued_sessions_reach_the_clinic_and_are_synced_only_on_ack(
    pki: Pki, broker: Broker, clinic: ClinicServer, tmp_path: Path
) -> None:
    with Device(pki, broker, tmp_path / "dev") as dev:
        ids = make_finished_sessions(dev.store, 5, segments=20)
        dev.sync.wake()
        wait_until(lambda: dev.synced(ids), 20, "all synced")
        for sid in ids:
            assert_same_at_clinic(dev.store, clinic.repo, sid, 1, dev.sync.models)
            item = dev.store.outbox_items(sid)[-1]
            session = dev.store.get_session(sid)
            assert item.acked_at is not None and session.synced_at is not None
            assert clinic.repo.deliveries(sid, 1) == 1
        status = dev.sync.status()
        assert status["enabled"] and status["connected"] and status["pending"] == 0
        assert status["last_ack_at"] is not None and status["broker"] == f"localhost:{broker.port}"
        # Every transcript read for sending is in the audit trail, as actor "sync".
        assert any(e.actor == "sync" and e.action == "read" for e in dev.store.audit_events(ids[0]))
        wait_until(lambda: (clinic.repo.device_status("dev-a") or {}).get("state") == "online", 10, "status")
    # A clean stop says offline; the retained status keeps saying it.
    wait_until(lambda: (clinic.repo.device_status("dev-a") or {}).get("state") == "offline", 10, "offline")


def test_last_will_marks_a_vanished_device_offline(
    pki: Pki, broker: Broker, clinic: ClinicServer, tmp_path: Path
) -> None:
    dev = Device(pki, broker, tmp_path / "dev", keepalive_s=5)
    with dev:
        wait_until(lambda: (clinic.repo.device_status("dev-a") or {}).get("state") == "online", 10, "online")
        # Cut the TCP connection without DISCONNECT, as a power cut or a crash would.
        assert dev.sync.client is not None
        dev.sync.client.socket().close()
        wait_until(lambda: (clinic.repo.device_status("dev-a") or {}).get("state") == "offline", 15, "will")


def test_two_hour_visit_is_chunked_below_the_broker_packet_limit(pki: Pki, tmp_path: Path) -> None:
    with Broker(pki, tmp_path / "broker", max_packet=32_768) as broker, \
            running_clinic(pki, broker, tmp_path / "clinic.db", max_message_bytes=32_768) as server, \
            Device(pki, broker, tmp_path / "dev", chunk_bytes=16_384) as dev:
        [sid] = make_finished_sessions(dev.store, 1, segments=480)  # 2 h at one utterance per 15 s
        dev.sync.wake()
        wait_until(lambda: dev.synced([sid]), 30, "long visit synced")
        assert_same_at_clinic(dev.store, server.repo, sid, 1)
        assert server.ingest.stats.chunks >= 5


def test_chunks_shrink_to_a_broker_packet_limit_below_chunk_bytes(
    pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Broker(pki, tmp_path / "broker", max_packet=4096) as broker:
        with running_clinic(pki, broker, tmp_path / "clinic.db", max_message_bytes=4096) as server, \
                Device(pki, broker, tmp_path / "dev") as dev:  # chunk_bytes: the default 128 KiB
            [sid] = make_finished_sessions(dev.store, 1, segments=120)
            dev.sync.wake()
            wait_until(lambda: dev.synced([sid]), 30, "synced in chunks that fit")
            assert_same_at_clinic(dev.store, server.repo, sid, 1)
            assert server.ingest.stats.chunks >= 4
        assert "oversize packet" not in broker.log
    assert "chunk_bytes is 131072 but the clinic broker accepts packets of at most 4096 bytes" in caplog.text


def test_broker_packet_limit_too_small_for_a_chunk_is_said_plainly(pki: Pki, tmp_path: Path) -> None:
    with Broker(pki, tmp_path / "broker", max_packet=600) as broker, Device(pki, broker, tmp_path / "dev") as dev:
        [sid] = make_finished_sessions(dev.store, 1, segments=20)
        dev.sync.wake()
        wait_until(lambda: "max_packet_size" in dev.sync.status()["last_error"], 10, "the problem shown")
        time.sleep(2.0)  # no reconnect loop: nothing too big is ever sent
        error = dev.sync.status()["last_error"]
        assert "at most 600 bytes" in error and "raise max_packet_size on the broker" in error, error
        assert broker.log.count("New client connected") == 1 and "oversize packet" not in broker.log
        assert dev.store.get_session(sid).state is State.QUEUED and dev.sync.status()["pending"] == 1


def test_edit_after_sync_reaches_the_clinic_and_retention_keeps_it_until_then(pki: Pki, tmp_path: Path) -> None:
    from appliance.config.schema import RetentionConfig
    from appliance.sync.retention import RetentionPurger

    broker = Broker(pki, tmp_path / "broker")
    with broker, running_clinic(pki, broker, tmp_path / "clinic.db") as server, \
            Device(pki, broker, tmp_path / "dev") as dev:
        purger = RetentionPurger(dev.store, RetentionConfig(keep_days=0.0))  # purge at once once acked
        [sid] = make_finished_sessions(dev.store, 1, segments=5)
        dev.sync.wake()
        wait_until(lambda: dev.synced([sid]), 20, "synced")
        broker.stop()  # the clinic is out of reach while the clinician corrects the visit
        seg = dev.store.read_transcript(sid, "clinician", "review")[0]
        dev.store.edit_segment_text(sid, seg.id, "corrected after it was synced", "clinician")
        assert purger.run_once() == []  # the correction is not at the clinic: kept
        assert dev.store.get_session(sid).state is State.QUEUED
        broker.start()
        wait_until(lambda: dev.synced([sid]), 20, "correction delivered")
        assert [s.revision for s in server.repo.list()] == [1, 2]
        assert_same_at_clinic(dev.store, server.repo, sid, 2)
        assert purger.run_once() == [sid]


def test_edited_revision_supersedes_the_queued_one(pki: Pki, tmp_path: Path) -> None:
    broker = Broker(pki, tmp_path / "broker")  # not started: the device queues
    with Device(pki, broker, tmp_path / "dev") as dev:
        [sid] = make_finished_sessions(dev.store, 1, segments=5)
        seg = dev.store.read_transcript(sid, "clinician", "review")[0]
        dev.store.edit_segment_text(sid, seg.id, "corrected before it was ever sent", "clinician")
        dev.store.enqueue(sid, "clinician")  # send again: revision 2 supersedes revision 1
        with broker, running_clinic(pki, broker, tmp_path / "clinic.db") as server:
            wait_until(lambda: dev.synced([sid]), 20, "synced")
            assert [(s.revision) for s in server.repo.list()] == [2]
            assert_same_at_clinic(dev.store, server.repo, sid, 2)
            # Edited after sending: a third revision goes out as well, the clinic keeps both.
            dev.store.edit_segment_text(sid, seg.id, "corrected again after sending", "clinician")
            dev.store.enqueue(sid, "clinician")
            dev.sync.wake()
            wait_until(lambda: dev.synced([sid]), 20, "re-synced")
            assert [s.revision for s in server.repo.list()] == [2, 3]
            assert_same_at_clinic(dev.store, server.repo, sid, 3)


def test_notes_and_commands_from_the_clinic(pki: Pki, broker: Broker, clinic: ClinicServer, tmp_path: Path) -> None:
    with Device(pki, broker, tmp_path / "dev") as dev:
        ids = make_finished_sessions(dev.store, 2, segments=3)
        dev.sync.wake()
        wait_until(lambda: dev.synced(ids), 20, "synced")
        clinic.send_note("site1", "dev-a", ids[0], 1, "SOAP", "S: dry cough. O: clear chest.").wait_for_publish(5)
        clinic.send_note("site1", "dev-a", ids[0], 1, "SOAP", "S: dry cough, 3 days.").wait_for_publish(5)
        wait_until(lambda: dev.store.note_count(ids[0]) == 1 and
                   dev.store.read_notes(ids[0], "test", "check")[0].text.endswith("3 days."), 10, "note")
        # resend: the clinic lost it; the device sends again and the clinic dedupes.
        clinic.send_command("site1", "dev-a", "resend", ids[1]).wait_for_publish(5)
        wait_until(lambda: clinic.repo.deliveries(ids[1], 1) == 2 and dev.synced(ids), 20, "resent")
        assert len(clinic.repo.list()) == 2
        # purge: the clinic says it is done with it.
        clinic.send_command("site1", "dev-a", "purge", ids[1]).wait_for_publish(5)
        wait_until(lambda: dev.store.get_session(ids[1]).state is State.PURGED, 10, "purged by command")
        # A note for a purged session is dropped and changes nothing.
        clinic.send_note("site1", "dev-a", ids[1], 1, "SOAP", "late").wait_for_publish(5)
        clinic.send_command("site1", "dev-a", "purge", "0190aaaa-0000-7000-8000-000000000000").wait_for_publish(5)
        clinic.send_note("site1", "dev-a", ids[0], 1, "letter", "still alive").wait_for_publish(5)
        wait_until(lambda: dev.store.note_count(ids[0]) == 2, 10, "device still processing")
        assert dev.store.note_count(ids[1]) == 0


def test_lost_ack_is_resent_and_stored_once(pki: Pki, broker: Broker, clinic: ClinicServer, tmp_path: Path) -> None:
    with Device(pki, broker, tmp_path / "dev", ack_timeout_s=1.0) as dev:
        wait_until(dev.sync.is_connected, 10, "connected")
        assert dev.sync.client is not None
        # Nobody listens on the ack topic: the clinic's ack is dropped by the broker, i.e. lost.
        dev.sync.client.unsubscribe(dev.sync.topics.ack)
        [sid] = make_finished_sessions(dev.store, 1, segments=5)
        dev.sync.wake()
        wait_until(lambda: clinic.repo.deliveries(sid, 1) >= 1, 10, "first delivery")
        assert dev.store.get_session(sid).state is State.QUEUED
        dev.sync.client.subscribe(dev.sync.topics.ack, qos=1)
        wait_until(lambda: dev.synced([sid]), 15, "synced after resend")
        assert clinic.repo.deliveries(sid, 1) >= 2  # it really was sent again
        assert [s.session_id for s in clinic.repo.list()] == [sid]  # and stored once
        assert dev.store.outbox_items(sid)[0].attempts >= 2
        assert_same_at_clinic(dev.store, clinic.repo, sid, 1)


def test_resend_command_moves_a_waiting_retry_forward(
    pki: Pki, broker: Broker, clinic: ClinicServer, tmp_path: Path
) -> None:
    with Device(pki, broker, tmp_path / "dev", ack_timeout_s=120.0, backoff_max_s=600.0) as dev:
        wait_until(dev.sync.is_connected, 10, "connected")
        assert dev.sync.client is not None
        dev.sync.client.unsubscribe(dev.sync.topics.ack)  # acks are lost from now on
        [sid] = make_finished_sessions(dev.store, 1, segments=5)
        dev.sync.wake()
        wait_until(lambda: clinic.repo.deliveries(sid, 1) == 1, 10, "first delivery")
        [item] = dev.store.outbox_items(sid)
        assert item.next_attempt_at > time.time() + 60  # waiting out its backoff, two minutes
        # The clinic asks again: the device sends now, not in two minutes.
        clinic.send_command("site1", "dev-a", "resend", sid).wait_for_publish(5)
        wait_until(lambda: clinic.repo.deliveries(sid, 1) == 2, 10, "resent at once")
        assert dev.store.get_session(sid).state is State.QUEUED  # that ack is lost too, once the
        # clinic has published it (it does so after its commit): only then listen to acks again.
        wait_until(lambda: sum("Received PUBLISH from clinic-server" in line and "/dev-a/ack'" in line
                               for line in broker.log.splitlines()) == 2, 10, "second ack published")
        dev.sync.client.subscribe(dev.sync.topics.ack, qos=1)
        time.sleep(0.5)
        clinic.send_command("site1", "dev-a", "resend", sid).wait_for_publish(5)
        wait_until(lambda: dev.synced([sid]), 10, "synced after the second resend")
        [item] = dev.store.outbox_items(sid)
        assert clinic.repo.deliveries(sid, 1) == 3 and item.attempts == 3 and item.acked_at is not None
        assert [s.session_id for s in clinic.repo.list()] == [sid]
