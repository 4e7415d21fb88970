"""Transcript sync to the clinic over MQTT (docs/sync-protocol.md) and retention on the device.

The composition root (appliance/daemon/room.py) calls build_sync() once; everything else stays
inside this package. What the room sees of it: appliance.sync.interface.TranscriptSync.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from appliance.sync.interface import TranscriptSync

if TYPE_CHECKING:  # the package is imported by the config rules; keep its import light
    from appliance.config.schema import ApplianceConfig
    from appliance.daemon.alerts import Alerts
    from appliance.store import SessionStore

log = logging.getLogger(__name__)

Loop = Callable[[threading.Event], None]


def build_sync(cfg: ApplianceConfig, store: SessionStore, alerts: Alerts) -> tuple[TranscriptSync, Loop | None]:
    """The sync the room shows (the real service, or a disabled one saying why) and the loop the
    supervisor runs for it (None when disabled)."""
    from appliance.config import rules  # here: keeps this package light for the config rules
    from appliance.sync.service import DisabledSync, SyncService

    problems = rules.check(cfg, "sync")  # the rules `appliance config check` runs
    for warning in problems:
        if warning.warning:
            log.warning("sync config: %s", warning)
    refused = "; ".join(map(str, rules.errors(problems)))
    if refused:  # recording goes on; visits wait in the outbox until the config is fixed
        log.error("transcript sync NOT started: %s", refused)
    if not cfg.sync.enabled or refused:
        return DisabledSync(store, refused), None
    service = SyncService(cfg, store, alerts=alerts)
    return service, service.run
