"""State the panel keeps besides the store, and helpers.

Who is unlocked and which visits a browser may see without the PIN: appliance/panel/lock.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import current_app

from appliance.config.schema import ApplianceConfig
from appliance.daemon.controller import SessionController
from appliance.panel.events import EventHub
from appliance.panel.lock import Room, StreamPasses, holds_recent, is_unlocked
from appliance.panel.pin import PinGuard
from appliance.panel.tools import MicTools
from appliance.store import IllegalTransition, SegmentNotFound, SessionClosed, SessionNotFound, SessionStore
from appliance.sync.interface import TranscriptSync


@dataclass
class PanelContext:
    cfg: ApplianceConfig
    controller: SessionController
    sync: TranscriptSync  # the real service or the disabled one: always there
    pins: PinGuard
    hub: EventHub
    room: Room
    tools: MicTools
    clock: Callable[[], float] = time.monotonic
    lan_requires_login: bool = field(default=False)
    streams: StreamPasses = field(default_factory=StreamPasses)

    @property
    def store(self) -> SessionStore:
        return self.controller.store

    def unlocked(self) -> bool:
        return is_unlocked(self)

    def live_id(self) -> str | None:
        s = self.controller.session
        return s.id if s is not None else None

    def can_view(self, session_id: str) -> bool:
        """The live visit and the one just stopped are open to the room; everything else needs the PIN."""
        return self.unlocked() or session_id == self.live_id() or holds_recent(self, session_id)


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
