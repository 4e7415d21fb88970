"""The device's sync component as the daemon runs it: the outbox pump (pump.py) over the MQTT
transport (transport.py), or DisabledSync when sync is off. Both answer status() for the panel
and `appliance ctl status`, and wake() when the clinician sends a visit."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from appliance.config.schema import ApplianceConfig
from appliance.daemon.alerts import Alerts
from appliance.store import SessionStore
from appliance.sync.pump import OutboxPump
from appliance.sync.transport import MqttTransport


class SyncService(OutboxPump):
    """The outbox pump over MQTT to the clinic broker ([sync] in the config)."""

    def __init__(self, cfg: ApplianceConfig, store: SessionStore, *, clock: Callable[[], float] = time.time,
                 alerts: Alerts | None = None) -> None:
        self.mqtt_transport = MqttTransport(cfg.sync, cfg.device)
        super().__init__(cfg, store, self.mqtt_transport, clock=clock, alerts=alerts)

    @property
    def client(self) -> mqtt.Client | None:
        """paho's client once run() has started (the fault tests drop subscriptions and sockets with it)."""
        return self.mqtt_transport.client


class DisabledSync:
    """What the panel sees when sync is off in the config, or refused by its rules."""

    def __init__(self, store: SessionStore, config_error: str = "") -> None:
        self.store = store
        self.config_error = config_error  # why sync is off although the config enables it

    def status(self) -> dict[str, Any]:
        return {"enabled": False, "connected": False, "broker": "", "pending": self.store.pending_count(),
                "last_ack_at": None, "last_error": f"config: {self.config_error}" if self.config_error else ""}

    def wake(self) -> None:
        pass
