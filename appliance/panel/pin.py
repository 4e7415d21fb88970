"""The clinician PIN: an argon2id hash in the state directory, and an escalating limit on guesses.

Only the hash is stored (mode 0600). Wrong PINs are counted; after cfg.pin_attempts in a
row, entry is refused for a while (a lockout). Each further lockout without the right PIN in
between lasts twice as long (cfg.pin_lockout_s, doubling, up to cfg.pin_lockout_max_s), so a
4-digit PIN takes years to guess instead of hours, and after cfg.pin_alert_lockouts lockouts
in a row the device raises an alert for IT until the right PIN is entered.
The counts and the end of a lockout are kept next to the hash (pin-attempts.json, 0600), so
restarting the daemon (or pulling the power) neither resets a count nor lifts a lockout.
In LAN mode a PIN needs at least LAN_PIN_MIN_LENGTH digits, and a shorter one set earlier
only unlocks the device's own screen.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from appliance.config.schema import PanelConfig
from appliance.daemon.alerts import Alerts

log = logging.getLogger(__name__)
LAN_PIN_MIN_LENGTH = 6
ALERT_KEY = "panel-pin-lockouts"


class PinError(ValueError):
    """A PIN was refused; the message is shown to the clinician as it is."""

    def __init__(self, message: str, lockout_s: float = 0.0) -> None:
        super().__init__(message)
        self.lockout_s = lockout_s  # the lockout this refusal started, if any


def duration_words(seconds: float) -> str:
    """A wait in the unit a person would use: "45 seconds", "8 minutes", "17 hours"."""
    whole = math.ceil(seconds)
    if whole < 120:
        return f"{whole} seconds"
    if whole < 7200:
        return f"{math.ceil(whole / 60)} minutes"
    return f"{math.ceil(whole / 3600)} hours"


class PinGuard:
    def __init__(self, path: Path | str, cfg: PanelConfig, *, clock: Callable[[], float] = time.monotonic,
                 alerts: Alerts | None = None) -> None:
        self.path = Path(path)
        self.cfg = cfg
        self.clock = clock
        self.alerts = alerts
        self._hasher = PasswordHasher()  # argon2id with the library's current recommended cost
        self._lock = threading.Lock()
        self._failures = 0
        self._lockouts = 0  # lockouts in a row without the right PIN in between
        self._locked_until = 0.0
        self._load_attempts()
        self._update_alert()

    @property
    def attempts_path(self) -> Path:
        return self.path.with_name("pin-attempts.json")

    @property
    def min_length(self) -> int:
        return max(self.cfg.pin_min_length, LAN_PIN_MIN_LENGTH) if self.cfg.lan else self.cfg.pin_min_length

    def lockout_for(self, lockouts: int) -> float:
        """Length of the n-th lockout in a row: pin_lockout_s doubling, capped at pin_lockout_max_s."""
        longest = max(self.cfg.pin_lockout_s, self.cfg.pin_lockout_max_s)
        return min(self.cfg.pin_lockout_s * 2.0 ** min(max(lockouts, 1) - 1, 40), longest)

    def _load_attempts(self) -> None:
        try:
            data = json.loads(self.attempts_path.read_text(encoding="utf-8"))
            failures, until = int(data["failures"]), float(data["locked_until"])
            lockouts = int(data.get("lockouts", 1 if until > time.time() else 0))  # files from before escalation
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            # Unreadable: fail closed (a full lockout) rather than hand out fresh guesses.
            failures, lockouts = 0, 1
            until = time.time() + self.lockout_for(lockouts)
        self._failures = max(0, failures)
        self._lockouts = max(0, lockouts)
        # Wall time survives a restart; capped so a clock set back cannot lock out for ever.
        remaining = min(until - time.time(), self.lockout_for(self._lockouts))
        if remaining > 0:
            self._locked_until = self.clock() + remaining

    def _save_attempts(self) -> None:
        until = time.time() + self.lockout_remaining() if self.lockout_remaining() > 0 else 0.0
        data = {"failures": self._failures, "lockouts": self._lockouts, "locked_until": until}
        try:
            _write_private(self.attempts_path, json.dumps(data))
        except OSError as exc:  # the count still holds in memory; only a restart would forget it
            log.error("PIN attempt count not saved to %s: %s", self.attempts_path, exc)

    def _update_alert(self) -> None:
        if self.alerts is None:
            return
        if self._lockouts >= self.cfg.pin_alert_lockouts:
            self.alerts.raise_alert(ALERT_KEY, f"{self._lockouts} PIN lockouts in a row on the touch panel: "
                                    "someone may be guessing the PIN. Entry is blocked for "
                                    f"{duration_words(self.lockout_for(self._lockouts))} after each.")
        else:
            self.alerts.clear(ALERT_KEY)

    @property
    def is_set(self) -> bool:
        return self.path.is_file()

    def lockout_remaining(self) -> float:
        return max(0.0, self._locked_until - self.clock())

    def set_pin(self, pin: str, confirm: str) -> None:
        pin = pin.strip()
        if not pin.isdigit() or not self.min_length <= len(pin) <= 12:
            raise PinError(f"The PIN must be {self.min_length} to 12 digits.")
        if pin != confirm.strip():
            raise PinError("The two PINs are not the same. Please type them again.")
        if len(set(pin)) == 1 or pin in "01234567890123456789" or pin in "98765432109876543210":
            raise PinError("This PIN is too easy to guess (repeated or consecutive digits). Please choose another.")
        _write_private(self.path, json.dumps({"format": 1, "hash": self._hasher.hash(pin)}))

    def check(self, pin: str, *, over_network: bool = False) -> None:
        """Return if the PIN is right; raise PinError (counting the failure) if not.

        ``over_network``: the request is not from the device's own screen; in LAN mode a PIN
        shorter than LAN_PIN_MIN_LENGTH is then refused even when right (not counted as a guess).
        """
        pin = pin.strip()
        with self._lock:
            wait = self.lockout_remaining()
            if wait > 0:
                raise PinError(f"Too many wrong PINs. Please wait {duration_words(wait)} and try again.")
            if not self.is_set:
                raise PinError("No PIN has been set on this device yet.")
            try:
                stored = json.loads(self.path.read_text(encoding="utf-8"))["hash"]
                self._hasher.verify(stored, pin)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                raise self._wrong() from None
            except (OSError, ValueError, KeyError) as exc:
                raise PinError(f"The stored PIN cannot be read ({exc}); please ask IT to reset it.") from None
            if self._failures or self._lockouts:
                self._failures = self._lockouts = 0
                self._save_attempts()
                self._update_alert()
        if over_network and self.cfg.lan and len(pin) < LAN_PIN_MIN_LENGTH:
            raise PinError(f"This PIN is too short to be used over the network. Please set a PIN of at least "
                           f"{LAN_PIN_MIN_LENGTH} digits on the device's own screen (Settings → Change PIN).")

    def _wrong(self) -> PinError:
        """Count a wrong PIN (under self._lock); the error to show."""
        self._failures += 1
        if self._failures < self.cfg.pin_attempts:
            self._save_attempts()
            left = self.cfg.pin_attempts - self._failures
            return PinError(f"Wrong PIN. {left} more {'try' if left == 1 else 'tries'} before a pause.")
        self._failures = 0
        self._lockouts += 1
        lockout = self.lockout_for(self._lockouts)
        self._locked_until = self.clock() + lockout
        self._save_attempts()
        log.warning("panel: %d wrong PINs in a row, lockout %d in a row: entry blocked for %.0f s",
                    self.cfg.pin_attempts, self._lockouts, lockout)
        self._update_alert()
        return PinError(f"Wrong PIN. Entry is now blocked for {duration_words(lockout)}.", lockout)


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
