"""The composition root: the room device built from one ApplianceConfig, in order.

Every collaborator and callback is handed over at construction; nothing is attached afterwards:
  1. the store (a damaged file is set aside and said loudly) and the alerts IT sees;
  2. the speech parts (speech/visit.py): recognizer and VAD (speech/engines.py), speaker
     labeller with the clinician's enrolment, microphone;
  3. the session controller, which makes the visit's audio side (VisitAudio) with its own callbacks;
  4. transcript sync, always present behind appliance.sync.interface.TranscriptSync (the real
     service, or DisabledSync saying why), and retention;
  5. the supervisor, and the status IT reads (ctl status, systemd STATUS) from controller, sync and
     supervisor;
  6. the supervised components: speech, the refined pass (asr.refine_model), control socket, sync,
     retention, touch panel;
  7. the GPIO button and LED (the button calls the same controller as the panel).
`appliance run` (service.py) then only runs the Room.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.asr.engine import Engine
from appliance.config.schema import ApplianceConfig
from appliance.daemon.alerts import Alerts
from appliance.daemon.control import ControlServer
from appliance.daemon.controller import SessionController
from appliance.daemon.status import RoomStatus
from appliance.daemon.supervisor import Supervisor
from appliance.hardware.gpio import open_gpio
from appliance.speech.visit import CaptureFactory, build_speech
from appliance.store.recovery import open_store_checked
from appliance.sync import build_sync
from appliance.sync.interface import TranscriptSync
from appliance.sync.retention import RetentionPurger

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Room:
    cfg: ApplianceConfig
    controller: SessionController
    sync: TranscriptSync
    supervisor: Supervisor  # holds every component; started by run_room
    status: RoomStatus
    led: Any  # the GPIO LED (and button), None without GPIO


def build_controller(cfg: ApplianceConfig, *, engine: Engine | None = None,
                     capture_factory: CaptureFactory | None = None) -> SessionController:
    """Steps 1–3: the data path (capture → VAD → recognition → store) behind one controller.
    ``engine`` and ``capture_factory`` replace the configured ones (tests)."""
    Path(cfg.paths.state_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    store, recovery = open_store_checked(cfg.store_path)
    alerts = Alerts()
    if recovery is not None:
        alerts.raise_alert("database", recovery.alert())
    speech = build_speech(cfg, engine=engine, capture_factory=capture_factory)
    return SessionController(cfg, store, speech, alerts,
                             storage_notice=recovery.message() if recovery is not None else "")


def build_room(cfg: ApplianceConfig) -> Room:
    controller = build_controller(cfg)
    store = controller.store
    sync, sync_loop = build_sync(cfg, store, controller.alerts)
    supervisor = Supervisor(cfg.daemon.restart_initial_s, cfg.daemon.restart_max_s)
    status = RoomStatus(controller, sync, supervisor)

    supervisor.add("speech", controller.visit.run)
    if controller.refiner is not None:
        supervisor.add("refine", controller.refiner.run)
    supervisor.add("control", ControlServer(cfg.daemon.control_socket, status).run)
    if sync_loop is not None:
        supervisor.add("sync", sync_loop)
    supervisor.add("retention", RetentionPurger(store, cfg.retention).run)
    from appliance.panel import build_panel  # Flask is imported only when the daemon runs

    panel = build_panel(cfg, controller, sync)
    if panel is not None:
        supervisor.add("panel", panel.run)
    # The button acts exactly like the panel's buttons: same controller, same locks.
    led = open_gpio(cfg.gpio, on_toggle=lambda: controller.toggle(actor="button"),
                    on_pause_toggle=lambda: controller.pause_toggle(actor="button"))
    return Room(cfg, controller, sync, supervisor, status, led)
