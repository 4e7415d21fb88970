"""Faults with the real daemon (`appliance run`), a real Mosquitto and the clinic server: broker
down, broker restarted mid-flush, daemon SIGKILLed mid-flush, clock jumps. After each, every
queued session is at the clinic exactly once and equal field by field to the device's copy."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.store import SessionStore, State, open_store
from appliance.sync.service import SyncService
from clinic.server import ClinicServer
from tests.broker import (
    Broker,
    Pki,
    assert_same_at_clinic,
    clinic_config,
    device_config,
    make_finished_sessions,
    sync_toml,
    wait_until,
)
from tests.daemon import DaemonProcess, write_config

pytestmark = pytest.mark.slow


def daemon_config(tmp: Path, pki: Pki, broker: Broker, **sync: object) -> Path:
    extra = sync_toml(pki, broker, "dev-a", **sync) + "[panel]\nenabled = false\n[diarize]\nenabled = false\n"
    return write_config(tmp, tmp / "unused.wav", extra=extra)


def all_synced(store: SessionStore, ids: list[str]) -> bool:
    return store.pending_count() == 0 and all(store.get_session(i).state is State.SYNCED for i in ids)


def check_clinic_has_exactly(store: SessionStore, clinic: ClinicServer, ids: list[str]) -> None:
    rows = clinic.repo.list()
    assert sorted((r.session_id, r.revision) for r in rows) == sorted((i, 1) for i in ids)  # none lost, none twice
    for sid in ids:
        assert_same_at_clinic(store, clinic.repo, sid, 1)


@pytest.fixture
def env(tmp_path: Path, pki: Pki) -> Iterator[tuple[Broker, SessionStore, Path]]:
    broker = Broker(pki, tmp_path / "broker")
    (tmp_path / "state").mkdir()
    store = open_store(str(tmp_path / "state" / "sessions.db"))
    yield broker, store, tmp_path
    store.close()
    broker.stop()


def test_sessions_queued_while_the_broker_is_down_are_delivered_after_it_starts(
    env: tuple[Broker, SessionStore, Path], pki: Pki
) -> None:
    broker, store, tmp = env
    ids = make_finished_sessions(store, 40, segments=30)
    with DaemonProcess(daemon_config(tmp, pki, broker)) as daemon:
        time.sleep(2.0)  # the daemon runs, retries the broker, and nothing leaves the outbox
        assert store.pending_count() == 40
        # `appliance ctl status` shows the sync: not connected, 40 waiting.
        sync = daemon.status()["sync"]
        assert sync["enabled"] and not sync["connected"] and sync["pending"] == 40
        assert sync["broker"] == f"localhost:{broker.port}" and sync["last_ack_at"] is None
        broker.start()
        clinic = ClinicServer(clinic_config(pki, broker, tmp / "clinic.db")).start()
        try:
            wait_until(lambda: all_synced(store, ids), 60, "all synced after the broker came up")
            check_clinic_has_exactly(store, clinic, ids)
            sync = daemon.status()["sync"]
            assert sync["connected"] and sync["pending"] == 0 and sync["last_ack_at"] is not None
        finally:
            clinic.stop()


def test_broker_restarted_in_the_middle_of_a_flush(env: tuple[Broker, SessionStore, Path], pki: Pki) -> None:
    broker, store, tmp = env
    ids = make_finished_sessions(store, 300, segments=30)
    broker.start()
    clinic = ClinicServer(clinic_config(pki, broker, tmp / "clinic.db")).start()
    try:
        with DaemonProcess(daemon_config(tmp, pki, broker, max_in_flight=10)):
            wait_until(lambda: clinic.repo.count() >= 20, 30, "flush under way")
            broker.restart()
            at_restart = clinic.repo.count()
            assert at_restart < len(ids), "flush finished before the restart; the test proved nothing"
            wait_until(lambda: all_synced(store, ids), 90, "all synced after the broker restart")
        check_clinic_has_exactly(store, clinic, ids)
    finally:
        clinic.stop()


def test_daemon_sigkilled_in_the_middle_of_a_flush(env: tuple[Broker, SessionStore, Path], pki: Pki) -> None:
    broker, store, tmp = env
    ids = make_finished_sessions(store, 300, segments=30)
    broker.start()
    clinic = ClinicServer(clinic_config(pki, broker, tmp / "clinic.db")).start()
    try:
        config = daemon_config(tmp, pki, broker, max_in_flight=10)
        daemon = DaemonProcess(config).start()
        try:
            wait_until(lambda: clinic.repo.count() >= 20, 30, "flush under way")
            daemon.kill()  # SIGKILL: no goodbye, acks in flight are lost with the process
            at_kill = clinic.repo.count()
            assert at_kill < len(ids), "flush finished before the kill; the test proved nothing"
            assert store.pending_count() > 0
        finally:
            daemon.__exit__()
        with DaemonProcess(config):
            wait_until(lambda: all_synced(store, ids), 90, "all synced after the restart")
        check_clinic_has_exactly(store, clinic, ids)
        assert store.integrity_check() == ["ok"]
    finally:
        clinic.stop()


class JumpingClock:
    """Wall clock with an offset the test can jump, shared by the store and the sync."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def test_clock_jumps_do_not_stall_or_lose_deliveries(env: tuple[Broker, SessionStore, Path], pki: Pki) -> None:
    broker, _, tmp = env
    broker.start()
    clock = JumpingClock()
    clinic = ClinicServer(clinic_config(pki, broker, tmp / "clinic.db")).start()
    cfg = device_config(pki, broker, "dev-a", tmp / "jump", ack_timeout_s=1.0, backoff_max_s=2.0)
    store = open_store(cfg.store_path, clock=clock)
    sync = SyncService(cfg, store, clock=clock)
    stop = threading.Event()
    thread = threading.Thread(target=sync.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(sync.is_connected, 10, "connected")
        assert sync.client is not None
        sync.client.unsubscribe(sync.topics.ack)  # acks lost: the device must retry on its schedule
        [a] = make_finished_sessions(store, 1, segments=3)
        sync.wake()
        wait_until(lambda: clinic.repo.deliveries(a, 1) >= 1, 10, "first send")
        # The wall clock steps back a day (NTP fix after a boot without RTC): the pending retry,
        # scheduled on the old clock, must not wait a day.
        clock.offset = -86_400.0
        sync.client.subscribe(sync.topics.ack, qos=1)
        wait_until(lambda: store.get_session(a).state is State.SYNCED, 15, "synced despite the clock going back")
        # And forward a week: sessions still go once, and synced_at follows the clock.
        clock.offset = 7 * 86_400.0
        [b] = make_finished_sessions(store, 1, segments=3, name="Later")
        sync.wake()
        wait_until(lambda: store.get_session(b).state is State.SYNCED, 15, "synced after a forward jump")
        assert store.get_session(b).synced_at > time.time() + 6 * 86_400
        check_clinic_has_exactly(store, clinic, [a, b])
    finally:
        stop.set()
        thread.join(10)
        store.close()
        clinic.stop()
