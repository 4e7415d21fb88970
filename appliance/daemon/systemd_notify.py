"""sd_notify(3) for the room daemon: readiness, status, stopping and the watchdog.

Uses systemd-python when it is installed; otherwise writes the datagram to $NOTIFY_SOCKET
itself (the protocol is one AF_UNIX datagram of newline-separated KEY=VALUE lines). Without
NOTIFY_SOCKET (a shell, a test, a container) every call is a no-op, so the daemon runs
unchanged outside systemd.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping

try:
    from systemd import daemon as _sd_daemon
except ImportError:  # not on the device image (e.g. a developer laptop without libsystemd)
    _sd_daemon = None

log = logging.getLogger(__name__)


class SystemdNotifier:
    """Report the daemon's state to systemd; harmless when not started by systemd."""

    def __init__(self, env: Mapping[str, str] | None = None, *, use_library: bool | None = None) -> None:
        env = os.environ if env is None else env
        self._env = env
        self._socket_path = env.get("NOTIFY_SOCKET") or None
        # The library reads os.environ itself, so only use it when we are looking at os.environ.
        if use_library is None:
            use_library = _sd_daemon is not None and env is os.environ
        self._use_library = bool(use_library) and _sd_daemon is not None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """True when systemd asked for notifications (NOTIFY_SOCKET is set)."""
        return self._socket_path is not None

    def ready(self, status: str | None = None) -> bool:
        return self._notify("READY=1", *self._status_line(status))

    def status(self, text: str) -> bool:
        return self._notify(*self._status_line(text))

    def stopping(self, status: str | None = None) -> bool:
        return self._notify("STOPPING=1", *self._status_line(status))

    def watchdog_ping(self) -> bool:
        return self._notify("WATCHDOG=1")

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for more start/stop time, e.g. while a slow SD card loads a model."""
        return self._notify(f"EXTEND_TIMEOUT_USEC={max(0, round(seconds * 1_000_000))}")

    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings (half of WatchdogSec=), or None if no watchdog is armed.

        Half the timeout, as sd_watchdog_enabled(3) recommends, so one late ping is not fatal.
        WATCHDOG_PID, when set, must be our pid: the variables may have leaked to a child.
        """
        usec = self._env.get("WATCHDOG_USEC", "")
        pid = self._env.get("WATCHDOG_PID", "")
        try:
            timeout_us = int(usec)
        except ValueError:
            return None
        if timeout_us <= 0:
            return None
        if pid:
            try:
                if int(pid) != os.getpid():
                    return None
            except ValueError:
                return None
        return timeout_us / 2 / 1_000_000

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    # -- internals ---------------------------------------------------------------------------

    @staticmethod
    def _status_line(text: str | None) -> tuple[str, ...]:
        if text is None:
            return ()
        # One line per assignment in the protocol: a newline would start a bogus field.
        return ("STATUS=" + " ".join(text.splitlines()),)

    def _notify(self, *lines: str) -> bool:
        if not lines or self._socket_path is None:
            return False
        message = "\n".join(lines)
        if self._use_library:
            assert _sd_daemon is not None
            try:
                return bool(_sd_daemon.notify(message))
            except OSError as exc:
                log.debug("sd_notify failed: %s", exc)
                return False
        return self._send_datagram(message.encode())

    def _send_datagram(self, payload: bytes) -> bool:
        path = self._socket_path
        assert path is not None
        if path.startswith("@"):
            address: str | bytes = "\0" + path[1:]  # abstract namespace
        elif path.startswith("/"):
            address = path
        else:
            log.debug("unsupported NOTIFY_SOCKET %r", path)  # e.g. vsock: needs libsystemd
            return False
        try:
            with self._lock:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto(payload, address)
            return True
        except OSError as exc:
            # A missed notification must not take the daemon down; a missed WATCHDOG will.
            log.debug("sd_notify to %s failed: %s", path, exc)
            return False
