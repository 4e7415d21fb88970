"""The clinician PIN: an argon2id hash in the state directory, and a rate limit on guesses.

Only the hash is stored (mode 0600). Wrong PINs are counted; after cfg.pin_attempts in a
row, entry is refused for cfg.pin_lockout_s — a 4-digit PIN then takes days to guess.
The count and the end of a lockout are kept next to the hash (pin-attempts.json, 0600), so
restarting the daemon (or pulling the power) neither resets the count nor lifts a lockout.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from appliance.config.schema import PanelConfig

log = logging.getLogger(__name__)


class PinError(ValueError):
    """A PIN was refused; the message is shown to the clinician as it is."""


class PinGuard:
    def __init__(self, path: Path | str, cfg: PanelConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self.cfg = cfg
        self.clock = clock
        self._hasher = PasswordHasher()  # argon2id with the library's current recommended cost
        self._lock = threading.Lock()
        self._failures = 0
        self._locked_until = 0.0
        self._load_attempts()

    @property
    def attempts_path(self) -> Path:
        return self.path.with_name("pin-attempts.json")

    def _load_attempts(self) -> None:
        try:
            data = json.loads(self.attempts_path.read_text(encoding="utf-8"))
            failures, until = int(data["failures"]), float(data["locked_until"])
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError):
            # Unreadable: fail closed (a full lockout) rather than hand out fresh guesses.
            failures, until = 0, time.time() + self.cfg.pin_lockout_s
        self._failures = max(0, failures)
        # Wall time survives a restart; capped so a clock set back cannot lock out for ever.
        remaining = min(until - time.time(), self.cfg.pin_lockout_s)
        if remaining > 0:
            self._locked_until = self.clock() + remaining

    def _save_attempts(self) -> None:
        until = time.time() + self.lockout_remaining() if self.lockout_remaining() > 0 else 0.0
        try:
            _write_private(self.attempts_path, json.dumps({"failures": self._failures, "locked_until": until}))
        except OSError as exc:  # the count still holds in memory; only a restart would forget it
            log.error("PIN attempt count not saved to %s: %s", self.attempts_path, exc)

    @property
    def is_set(self) -> bool:
        return self.path.is_file()

    def lockout_remaining(self) -> float:
        return max(0.0, self._locked_until - self.clock())

    def set_pin(self, pin: str, confirm: str) -> None:
        pin = pin.strip()
        if not pin.isdigit() or not self.cfg.pin_min_length <= len(pin) <= 12:
            raise PinError(f"The PIN must be {self.cfg.pin_min_length} to 12 digits.")
        if pin != confirm.strip():
            raise PinError("The two PINs are not the same. Please type them again.")
        if len(set(pin)) == 1 or pin in "01234567890123456789" or pin in "98765432109876543210":
            raise PinError("This PIN is too easy to guess (repeated or consecutive digits). Please choose another.")
        _write_private(self.path, json.dumps({"format": 1, "hash": self._hasher.hash(pin)}))

    def check(self, pin: str) -> None:
        """Return if the PIN is right; raise PinError (counting the failure) if not."""
        with self._lock:
            wait = self.lockout_remaining()
            if wait > 0:
                raise PinError(f"Too many wrong PINs. Please wait {int(wait) + 1} seconds and try again.")
            if not self.is_set:
                raise PinError("No PIN has been set on this device yet.")
            try:
                stored = json.loads(self.path.read_text(encoding="utf-8"))["hash"]
                self._hasher.verify(stored, pin.strip())
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                self._failures += 1
                if self._failures >= self.cfg.pin_attempts:
                    self._failures = 0
                    self._locked_until = self.clock() + self.cfg.pin_lockout_s
                    self._save_attempts()
                    raise PinError(f"Wrong PIN. Entry is now blocked for {int(self.cfg.pin_lockout_s)} seconds.") \
                        from None
                self._save_attempts()
                left = self.cfg.pin_attempts - self._failures
                raise PinError(f"Wrong PIN. {left} more {'try' if left == 1 else 'tries'} before a pause.") from None
            except (OSError, ValueError, KeyError) as exc:
                raise PinError(f"The stored PIN cannot be read ({exc}); please ask IT to reset it.") from None
            if self._failures:
                self._failures = 0
                self._save_attempts()


def _write_private(path: Path, data: str) -> None:
    """Write atomically, readable by the service user only (0600, directory 0700)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
