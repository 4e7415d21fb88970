"""`appliance run`: wire the stages together and keep them running.

Built from one ApplianceConfig; each stage gets its own typed section. The main loop is
the heartbeat: it pings the systemd watchdog, publishes STATUS, drives the LED and keeps
the recorded time of the visit current in the store (so a crash loses only what was in
flight).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

from appliance.asr.engine import Engine
from appliance.capture import Capture
from appliance.config.schema import ApplianceConfig
from appliance.daemon.control import ControlServer
from appliance.daemon.controller import SessionController
from appliance.daemon.hardening import disable_core_dumps
from appliance.daemon.storage import is_disk_full
from appliance.daemon.supervisor import Supervisor
from appliance.daemon.systemd_notify import SystemdNotifier
from appliance.diarize.visit import VisitDiarization
from appliance.frontend import build_frontend
from appliance.hardware.gpio import open_gpio
from appliance.speech.engines import build_engine, build_segmenter
from appliance.speech.pipeline import SpeechPipeline
from appliance.store.recovery import open_store_checked
from appliance.sync import add_sync

log = logging.getLogger(__name__)


def build_controller(cfg: ApplianceConfig, engine: Engine | None = None) -> SessionController:
    """The data path: capture → VAD → recognition → store, behind one controller."""
    state_dir = Path(cfg.paths.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    unavailable = ""
    if engine is None:
        engine, unavailable = build_engine(cfg)
    segmenter = build_segmenter(cfg)
    store, recovery = open_store_checked(cfg.store_path)  # a damaged file is set aside, said loudly
    pipeline = SpeechPipeline(segmenter, engine, lambda _s: None, partial_interval_s=cfg.asr.partial_interval_s,
                              frontend=build_frontend(cfg.capture.frontend, cfg.capture.buffer_seconds))
    controller = SessionController(cfg, store, pipeline, lambda sink: Capture(cfg.capture, sink))
    controller.unavailable = unavailable
    if recovery is not None:
        controller.storage.notice = recovery.message()  # the panel and ctl status, until restart
        controller.alerts.raise_alert("database", recovery.alert())
    controller.diarization = VisitDiarization(cfg)
    return controller


def status_line(controller: SessionController) -> str:
    snap = controller.snapshot()
    alerts = "".join(f"; ALERT: {a['message']}" for a in controller.alerts.active())
    if snap.session is None:
        return (f"idle; NOT READY: {controller.unavailable}" if controller.unavailable else "idle") + alerts
    line = f"{snap.state} {snap.session.id} ({int(snap.elapsed_s // 60)}:{int(snap.elapsed_s % 60):02d}, " \
           f"{snap.segments} segments)"
    if snap.capture and snap.capture.state != "ok":
        line += f"; mic: {snap.capture.message}"
    return line + alerts


def heartbeat(controller: SessionController, notifier: SystemdNotifier, led: Any) -> None:
    """One beat: what waits for storage is retried; STATUS for systemd, the LED, and the visit's
    recorded time kept in the store."""
    controller.retry_storage()
    snap = controller.snapshot()
    notifier.status(status_line(controller))
    if led is not None:
        led.set_led(snap.state)
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
    stop = stop_event or threading.Event()
    notifier = SystemdNotifier()
    controller = build_controller(cfg)
    if controller.unavailable:
        log.error("%s", controller.unavailable)
    recovered = controller.recover()
    if recovered:
        log.warning("%d visit(s) were interrupted and can be resumed or stopped", len(recovered))

    sup = Supervisor(cfg.daemon.restart_initial_s, cfg.daemon.restart_max_s)
    sup.add("speech", controller.pipeline.run)
    sup.add("control", ControlServer(cfg.daemon.control_socket, controller).run)
    add_sync(sup, cfg, controller)  # transcript delivery + retention; controller.sync.status() for the panel
    from appliance.panel import add_panel  # Flask is imported only when the daemon runs

    add_panel(sup, cfg, controller)
    # The button acts exactly like the panel's buttons: same controller, same locks.
    led = open_gpio(cfg.gpio, on_toggle=lambda: controller.toggle(actor="button"),
                    on_pause_toggle=lambda: controller.pause_toggle(actor="button"))

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    sup.start()
    notifier.ready()
    log.info("appliance daemon ready", extra={"device_id": cfg.device.id})
    interval = min(cfg.daemon.status_interval_s, notifier.watchdog_interval() or cfg.daemon.status_interval_s)
    try:
        while not stop.wait(interval):
            notifier.watchdog_ping()
            try:
                heartbeat(controller, notifier, led)
            except Exception:  # e.g. the database locked by a reader for a while: the visit goes on
                log.exception("status update failed; retrying at the next beat")
    finally:
        notifier.stopping()
        controller.shutdown()
        sup.stop(timeout=2.0)
        if led is not None:
            led.close()
        controller.store.close()
        log.info("appliance daemon stopped")
    return 0
