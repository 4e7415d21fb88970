"""Transcript sync to the clinic over MQTT (docs/sync-protocol.md) and retention on the device.

The daemon calls add_sync() once; everything else stays inside this package.
"""

from __future__ import annotations

from typing import Any

from appliance.config.schema import ApplianceConfig


def add_sync(sup: Any, cfg: ApplianceConfig, controller: Any) -> Any:
    """Register the sync and retention components with the daemon's supervisor, and expose the
    sync status to the panel as `controller.sync.status()`."""
    from appliance.sync.retention import RetentionPurger
    from appliance.sync.service import DisabledSync, SyncService

    service = (SyncService(cfg, controller.store, alerts=controller.alerts) if cfg.sync.enabled
               else DisabledSync(controller.store))
    controller.sync = service
    if cfg.sync.enabled:
        sup.add("sync", service.run)
    sup.add("retention", RetentionPurger(controller.store, cfg.retention).run)
    return service
