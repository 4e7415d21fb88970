"""Per-device rate limit for the ingest's warnings: one device sending bad messages at 100/s must
not fill the clinic's disk with log lines (it wrote ~4.6 MB of tracebacks a minute).

The first warning of a device in each interval is logged as it is; the rest of that interval are
counted and reported as one summary line when the interval is over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Window:
    opened_at: float
    suppressed: int = 0


class DeviceLogLimiter:
    def __init__(self, logger: logging.Logger, interval_s: float, clock: Callable[[], float]) -> None:
        self.log = logger
        self.interval_s = interval_s
        self.clock = clock
        self._windows: dict[str, _Window] = {}  # one per device id seen misbehaving: bounded by the ACL

    def warning(self, device: str, msg: str, *args: object, exc_info: bool = False) -> None:
        """Log `msg` for `device` (any key: a device id, or what failed) unless it already had a
        line in the current interval."""
        now = self.clock()
        window = self._windows.get(device)
        if window is not None and now - window.opened_at < self.interval_s:
            window.suppressed += 1
            return
        if window is not None:
            self._summarise(device, window)
        self._windows[device] = _Window(now)
        self.log.warning(msg, *args, exc_info=exc_info)

    def flush(self) -> None:
        """Summarise and close every interval that is over (called once per batch)."""
        now = self.clock()
        for device, window in list(self._windows.items()):
            if now - window.opened_at >= self.interval_s:
                self._summarise(device, window)
                del self._windows[device]

    def _summarise(self, device: str, window: _Window) -> None:
        if window.suppressed:
            self.log.warning("%s: %d more messages dropped or refused in %.0f s (logged once per %.0f s)",
                             device, window.suppressed, self.clock() - window.opened_at, self.interval_s)
