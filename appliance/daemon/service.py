"""`appliance run`: build the room (room.py) and keep it running.

The main loop is the heartbeat: it pings the systemd watchdog, publishes STATUS, drives the
LED and keeps the recorded time of the visit current in the store (so a crash loses only what
was in flight).
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from appliance.config.schema import ApplianceConfig
from appliance.daemon.hardening import disable_core_dumps
from appliance.daemon.room import Room, build_room
from appliance.daemon.storage import is_disk_full
from appliance.daemon.systemd_notify import SystemdNotifier

log = logging.getLogger(__name__)


def heartbeat(room: Room, notifier: SystemdNotifier) -> None:
    """One beat: what waits for storage is retried; STATUS for systemd, the LED, and the visit's
    recorded time kept in the store."""
    controller = room.controller
    controller.retry_storage()
    snap = controller.snapshot()
    notifier.status(room.status.line())
    if room.led is not None:
        room.led.set_led(snap.state)
    if snap.session is not None and snap.state == "recording" and not controller.storage.full:
        try:
            controller.store.set_recorded_seconds(snap.session.id, snap.elapsed_s)
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            controller.storage.note_failure(exc)  # said in the status; written again once there is room


def run_daemon(cfg: ApplianceConfig, *, stop_event: threading.Event | None = None) -> int:
    # First, before any audio is in RAM: a core dump would put the visit on disk.
    disable_core_dumps()
    os.umask(0o077)  # nothing the daemon writes is for other users
    return run_room(build_room(cfg), stop_event or threading.Event())


def run_room(room: Room, stop: threading.Event) -> int:
    controller, sup, notifier = room.controller, room.supervisor, SystemdNotifier()
    if controller.unavailable:
        log.error("%s", controller.unavailable)
    recovered = controller.recover()
    if recovered:
        log.warning("%d visit(s) were interrupted and can be resumed or stopped", len(recovered))

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    sup.start()
    notifier.ready()
    log.info("appliance daemon ready", extra={"device_id": room.cfg.device.id})
    interval = min(room.cfg.daemon.status_interval_s, notifier.watchdog_interval() or room.cfg.daemon.status_interval_s)
    try:
        while not stop.wait(interval):
            notifier.watchdog_ping()
            try:
                heartbeat(room, notifier)
            except Exception:  # e.g. the database locked by a reader for a while: the visit goes on
                log.exception("status update failed; retrying at the next beat")
    finally:
        notifier.stopping()
        controller.shutdown()
        sup.stop(timeout=2.0)
        if room.led is not None:
            room.led.close()
        controller.store.close()
        log.info("appliance daemon stopped")
    return 0
