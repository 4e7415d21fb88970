"""The clinician PIN: an argon2id hash in the state directory, and a rate limit on guesses.

Only the hash is stored (mode 0600). Wrong PINs are counted; after cfg.pin_attempts in a
row, entry is refused for cfg.pin_lockout_s — a 4-digit PIN then takes days to guess.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from appliance.config.schema import PanelConfig


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
        data = json.dumps({"format": 1, "hash": self._hasher.hash(pin)})
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)

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
                    raise PinError(f"Wrong PIN. Entry is now blocked for {int(self.cfg.pin_lockout_s)} seconds.") \
                        from None
                left = self.cfg.pin_attempts - self._failures
                raise PinError(f"Wrong PIN. {left} more {'try' if left == 1 else 'tries'} before a pause.") from None
            except (OSError, ValueError, KeyError) as exc:
                raise PinError(f"The stored PIN cannot be read ({exc}); please ask IT to reset it.") from None
            self._failures = 0
