"""Who may see what, per browser session: idle time, the visit just stopped, live-stream passes.

Idle time is kept in each browser's signed session cookie (the clock of its last touch), so a
script, another tab or a LAN browser cannot keep an unattended kiosk unlocked. The Lock button
still locks the whole room: it bumps the room's epoch, and a session counts as unlocked only if
it unlocked in the current epoch.

The visit just stopped is open without the PIN to a browser that opens it within auto_lock_s of
the Stop; that browser keeps it until it is idle for auto_lock_s (or the room locks).

The live transcript's text goes only to an event stream that presents a pass issued by an
audited load of the Recording screen; each stream start is audited too.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import current_app, request, session

if TYPE_CHECKING:
    from appliance.panel.context import PanelContext

# Requests that are not a person touching the panel: they must not keep it unlocked.
PASSIVE_ENDPOINTS = {"static", "events.stream", "events.status"}
SEEN, UNLOCKED, RECENT = "seen", "unlocked", "recent"  # session cookie keys


class Room:
    """What the room shares: the lock epoch and the visit just stopped."""

    def __init__(self, auto_lock_s: float, clock: Callable[[], float]) -> None:
        self.auto_lock_s = auto_lock_s
        self.clock = clock
        self.epoch = 1
        self.recent: str | None = None  # visit just stopped
        self.recent_at = 0.0
        self._live: str | None = None
        self._lock = threading.Lock()

    def lock(self) -> None:
        with self._lock:
            self.epoch += 1
            self.recent = None

    def set_recent(self, session_id: str) -> None:
        with self._lock:
            self.recent, self.recent_at = session_id, self.clock()

    def forget_recent_before(self, t: float) -> None:
        """Close the visit just stopped if it stopped before ``t`` (a Stop after that stays open)."""
        with self._lock:
            if self.recent is not None and self.recent_at <= t:
                self.recent = None

    def recent_open(self, session_id: str) -> bool:
        """May a browser still take up the visit just stopped (without the PIN)?"""
        return session_id == self.recent and self.clock() - self.recent_at <= self.auto_lock_s

    def on_event(self, kind: str, data: dict[str, Any]) -> None:
        """Controller listener: remember the visit a Stop (panel or button) just ended."""
        if kind != "state":
            return
        with self._lock:
            sid = data.get("session_id")
            if data.get("state") == "stopped" and sid is not None:
                self.recent, self.recent_at = sid, self.clock()
            elif sid is None and self._live is not None:
                self.recent, self.recent_at = self._live, self.clock()
            self._live = sid


def idle_s(pc: PanelContext) -> float:
    """How long this browser session has not touched the panel (0 for a new one)."""
    seen = session.get(SEEN)
    return max(0.0, pc.clock() - seen) if isinstance(seen, (int, float)) else 0.0


def _idle_expired(pc: PanelContext) -> bool:
    return idle_s(pc) > pc.cfg.panel.auto_lock_s


def is_unlocked(pc: PanelContext) -> bool:
    return pc.pins.is_set and session.get(UNLOCKED) == pc.room.epoch and not _idle_expired(pc)


def mark_unlocked(pc: PanelContext) -> None:
    session[UNLOCKED] = pc.room.epoch
    session[SEEN] = pc.clock()


def holds_recent(pc: PanelContext, session_id: str) -> bool:
    """This browser may see the visit just stopped (taken up now if still open)."""
    if _idle_expired(pc):
        return False
    if session.get(RECENT) == [session_id, pc.room.epoch]:
        return True
    if pc.room.recent_open(session_id):
        session[RECENT] = [session_id, pc.room.epoch]
        return True
    return False


def auto_lock() -> None:
    """before_request: a browser idle for auto_lock_s loses its unlock and the visit just stopped."""
    pc: PanelContext = current_app.extensions["panel"]
    if request.endpoint in PASSIVE_ENDPOINTS:
        return
    if _idle_expired(pc):
        held = session.pop(UNLOCKED, None) is not None
        held |= session.pop(RECENT, None) is not None
        if held:
            # The room was left alone: a visit stopped before then needs the PIN now. One the
            # button stopped meanwhile is still "just stopped" (its Review follows the Stop).
            pc.room.forget_recent_before(session[SEEN])
            pc.store.audit("panel", "panel:auto-lock", None, remote=request.remote_addr or "")
    session[SEEN] = pc.clock()


class StreamPasses:
    """Passes to the live transcript's text, one per audited load of the Recording screen.

    A pass stays valid for reconnects of that page while its visit is live; the oldest are
    forgotten beyond ``keep`` (that page then gets the stream without text until reloaded).
    """

    def __init__(self, keep: int = 64) -> None:
        self.keep = keep
        self._passes: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def issue(self, session_id: str) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            for old in [t for t, sid in self._passes.items() if sid != session_id]:
                del self._passes[old]  # passes of visits that ended are useless
            self._passes[token] = session_id
            while len(self._passes) > self.keep:
                self._passes.popitem(last=False)
        return token

    def visit_of(self, token: str | None) -> str | None:
        with self._lock:
            return self._passes.get(token or "")
