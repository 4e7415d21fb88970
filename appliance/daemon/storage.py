"""Room for transcripts: free space of the state directory, and the utterances waiting for it.

A transcribed utterance that cannot be written (full disk, or any other store failure) is kept
in a bounded RAM queue, in order, and written as soon as a retry succeeds; the room is told
(panel banner, `appliance ctl status`) and IT too (the 'storage' alert: ctl status, systemd
STATUS, the status topic) instead of the text being dropped.
Text only: the audio of an utterance is gone once it is transcribed, full disk or not.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from appliance.daemon.alerts import Alerts
from appliance.speech.pipeline import FinalSegment

log = logging.getLogger(__name__)

STORAGE_FULL = "Storage full — the transcript is kept in memory until space is freed"
MB = 1024 * 1024


def is_disk_full(exc: BaseException) -> bool:
    """SQLite's SQLITE_FULL, or the OS's ENOSPC / EDQUOT."""
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc)
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


class StorageGuard:
    """Thread-safe: the recognition worker and the daemon's heartbeat both flush."""

    def __init__(self, directory: str, min_free_mb: float, held_max: int, alerts: Alerts | None = None, *,
                 notice: str = "") -> None:
        self.directory = directory
        self.alerts = alerts
        self._alerted = ""
        self.min_free_bytes = int(min_free_mb * MB)
        self.held_max = held_max
        self._held: deque[FinalSegment] = deque()
        self._lock = threading.Lock()
        self._failure: BaseException | None = None  # of the last write; None once one succeeds
        self.notice = notice  # e.g. a damaged database set aside at start-up: shown until restart

    # -- free space ----------------------------------------------------------------------------
    def free_bytes(self) -> int:
        st = os.statvfs(self.directory)
        return st.f_bavail * st.f_frsize

    def start_refusal(self) -> str:
        """Why a visit must not start for lack of room ("" when it may)."""
        free = self.free_bytes()
        if free >= self.min_free_bytes and not self.full:
            return ""
        return (f"storage is full: {free / MB:.1f} MB free in {self.directory}, a visit needs at least "
                f"{self.min_free_bytes / MB:.1f} MB (daemon.min_free_mb); free space on the device first")

    # -- utterances waiting for the disk -------------------------------------------------------
    @property
    def held(self) -> int:
        return len(self._held)

    @property
    def at_limit(self) -> bool:
        return len(self._held) >= self.held_max

    @property
    def full(self) -> bool:
        """The last write failed (and nothing has been written since)."""
        return self._failure is not None

    def note_failure(self, exc: BaseException) -> None:
        if self._failure is None:
            log.error("cannot write to the session store (%s): %s", "disk full" if is_disk_full(exc) else
                      type(exc).__name__, exc)
        self._failure = exc
        self.publish()

    def note_success(self) -> None:
        if self._failure is not None:
            log.warning("the session store is writable again")
            self._failure = None
            self.publish()

    def publish(self) -> None:
        """Raise, change or clear the 'storage' alert to match the status."""
        message = self.status()["message"]
        if self.alerts is None or message == self._alerted:
            return
        self._alerted = message
        if message:
            self.alerts.raise_alert("storage", message)
        else:
            self.alerts.clear("storage")

    def hold(self, seg: FinalSegment) -> None:
        self._held.append(seg)

    def flush(self, write: Callable[[FinalSegment], None]) -> bool:
        """Write the held utterances oldest first; stop at the first failure (kept, retried later).
        True when none is left."""
        with self._lock:
            while self._held:
                try:
                    write(self._held[0])
                except Exception as exc:
                    self.note_failure(exc)
                    return False
                self._held.popleft()
                self.note_success()
            return True

    # -- for the panel, ctl status and the status topic ----------------------------------------
    def status(self) -> dict[str, Any]:
        try:
            free = self.free_bytes()
        except OSError:
            free = 0
        failure = self._failure
        if failure is not None or self._held:
            state = "full" if failure is None or is_disk_full(failure) else "error"
            message = STORAGE_FULL if state == "full" else \
                f"Cannot save the transcript ({failure}) — it is kept in memory and saving is retried"
            if self.at_limit:
                message += "; the microphone is paused until it is saved"
        elif free < self.min_free_bytes:
            state, message = "low", f"Storage almost full — {free / MB:.1f} MB left"
        else:
            state, message = "ok", ""
        return {"state": state, "message": message, "held": len(self._held), "free_mb": round(free / MB, 1),
                "notice": self.notice}
