"""State the panel keeps besides the store: the lock, the visit just stopped, and helpers.

The lock is one "epoch" for the whole room: auto-lock or Lock bumps it, and a browser
session counts as unlocked only if it unlocked in the current epoch. The visit that was
just stopped stays viewable without the PIN (the clinician reviews it straight away) until
the panel locks; after that it needs the PIN like any other visit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, session

from appliance.config.schema import ApplianceConfig
from appliance.daemon.controller import SessionController
from appliance.panel.events import EventHub
from appliance.panel.pin import PinGuard
from appliance.panel.tools import MicTools
from appliance.store import IllegalTransition, SegmentNotFound, SessionClosed, SessionNotFound


class Room:
    def __init__(self, auto_lock_s: float, clock: Callable[[], float]) -> None:
        self.auto_lock_s = auto_lock_s
        self.clock = clock
        self.epoch = 1
        self.recent: str | None = None  # visit just stopped, reviewable until the next lock
        self.last_activity = clock()
        self._live: str | None = None
        self._lock = threading.Lock()

    def touch(self) -> None:
        self.last_activity = self.clock()

    def idle_for(self) -> float:
        return self.clock() - self.last_activity

    def lock(self) -> None:
        with self._lock:
            self.epoch += 1
            self.recent = None

    def on_event(self, kind: str, data: dict[str, Any]) -> None:
        """Controller listener: remember the visit a Stop (panel or button) just ended."""
        if kind != "state":
            return
        with self._lock:
            sid = data.get("session_id")
            if data.get("state") == "stopped" and sid is not None:
                self.recent = sid
            elif sid is None and self._live is not None:
                self.recent = self._live
            self._live = sid
        self.touch()  # pressing the physical button is activity too


@dataclass
class PanelContext:
    cfg: ApplianceConfig
    controller: SessionController
    pins: PinGuard
    hub: EventHub
    room: Room
    tools: MicTools
    clock: Callable[[], float] = time.monotonic
    lan_requires_login: bool = field(default=False)

    @property
    def store(self):  # type: ignore[no-untyped-def]
        return self.controller.store

    def unlocked(self) -> bool:
        return self.pins.is_set and session.get("unlocked") == self.room.epoch

    def live_id(self) -> str | None:
        s = self.controller.session
        return s.id if s is not None else None

    def can_view(self, session_id: str) -> bool:
        """The live visit and the one just stopped are open to the room; everything else needs the PIN."""
        return self.unlocked() or session_id in (self.live_id(), self.room.recent)


def ctx() -> PanelContext:
    return current_app.extensions["panel"]


def plain_error(exc: BaseException) -> str:
    """An exception from the controller or store in words a clinician understands."""
    if isinstance(exc, IllegalTransition):
        verbs = {"recording": "start", "paused": "pause", "stopped": "stop", "reviewed": "mark as reviewed",
                 "queued": "send", "synced": "mark as sent", "purged": "delete"}
        return f"This visit is {exc.current.value}, so it cannot {verbs.get(exc.target.value, 'change')} now."
    if isinstance(exc, SessionNotFound):
        return "That visit is no longer on this device."
    if isinstance(exc, SegmentNotFound):
        return "That passage was already deleted or changed; the page has been refreshed."
    if isinstance(exc, SessionClosed):
        return "This visit's transcript has been deleted from the device after the retention period."
    text = str(exc).strip() or type(exc).__name__
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")
