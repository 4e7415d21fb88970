"""Device alerts for the people who look after it: `appliance ctl status`, the systemd STATUS
line and the clinic's status topic. A component raises an alert under its own key and clears
it when the condition is over; alerts are in RAM, so the component re-raises from its own
persisted state after a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)
MAX_MESSAGE = 200  # the status topic's schema limit


class Alerts:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._active: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def raise_alert(self, key: str, message: str) -> None:
        with self._lock:
            since = self._active.get(key, {}).get("since", self.clock())
            self._active[key] = {"key": key, "message": message[:MAX_MESSAGE], "since": since}
        self._changed()

    def clear(self, key: str) -> None:
        with self._lock:
            gone = self._active.pop(key, None)
        if gone is not None:
            self._changed()

    def active(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(a) for a in self._active.values()]

    def add_listener(self, fn: Callable[[], None]) -> None:
        """Called (without arguments) after every change, e.g. to publish the status now."""
        self._listeners.append(fn)

    def _changed(self) -> None:
        for fn in list(self._listeners):
            try:
                fn()
            except Exception:  # whoever raised the alert must not fail because a reader did
                log.exception("alert listener failed")
