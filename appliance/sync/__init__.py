"""Transcript sync to the clinic over MQTT (docs/sync-protocol.md) and retention on the device.

The daemon calls add_sync() once; everything else stays inside this package.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from appliance.config.schema import ApplianceConfig

if TYPE_CHECKING:
    from appliance.sync.service import Sync

log = logging.getLogger(__name__)


def add_sync(sup: Any, cfg: ApplianceConfig, controller: Any) -> Sync:
    """Register the sync and retention components with the daemon's supervisor, and expose the
    sync status to the panel as `controller.sync.status()`."""
    from appliance.config import rules  # here: the rules import appliance.sync.protocol
    from appliance.sync.retention import RetentionPurger
    from appliance.sync.service import DisabledSync, SyncService

    problems = rules.check(cfg, "sync")  # the rules `appliance config check` runs
    for warning in problems:
        if warning.warning:
            log.warning("sync config: %s", warning)
    refused = "; ".join(map(str, rules.errors(problems)))
    if refused:  # recording goes on; visits wait in the outbox until the config is fixed
        log.error("transcript sync NOT started: %s", refused)
    running = SyncService(cfg, controller.store, alerts=controller.alerts) if cfg.sync.enabled and not refused else None
    service: Sync = running if running is not None else DisabledSync(controller.store, refused)
    controller.sync = service
    if running is not None:
        sup.add("sync", running.run)
    sup.add("retention", RetentionPurger(controller.store, cfg.retention).run)
    return service
