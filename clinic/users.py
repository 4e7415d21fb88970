"""People who may use the clinic web view: a user name, a display name (what signatures show) and
an argon2id password hash in the clinic store (clinic_users). Managed with
`clinic users add|passwd|disable|enable|list`; the web view checks passwords with `authenticate`.

Wrong passwords are counted per user; after `web.login_attempts` in a row the account is locked for
`web.lockout_s` (doubling with each further lockout, as the panel's PIN), and the count survives
restarts because it is in the store. A disabled user cannot log in, but their signatures stay.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from clinic.store import TranscriptStore
from clinic.store.review import ReviewError, StoredUser

MIN_PASSWORD_LENGTH = 12
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
_hasher = PasswordHasher()  # argon2id, the library's recommended cost
# Checked against when the user does not exist, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not a password of anybody")


class UserError(ValueError):
    """A refused user change or login; the message is shown as it is."""


@dataclass(frozen=True)
class LoginPolicy:
    attempts: int = 5
    lockout_s: float = 60.0
    lockout_max_s: float = 3600.0


def check_password(password: str, username: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if password.casefold() == username.casefold() or len(set(password)) < 4:
        raise UserError("the password is too easy to guess")


def add_user(repo: TranscriptStore, username: str, display_name: str, password: str) -> None:
    if not USERNAME.match(username):
        raise UserError(f"user name {username!r}: 2-64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit")
    if not display_name.strip():
        raise UserError("the display name (shown with signatures) is empty")
    check_password(password, username)
    try:
        repo.add_user(username, display_name.strip(), _hasher.hash(password))
    except ReviewError as exc:
        raise UserError(str(exc)) from None


def set_password(repo: TranscriptStore, username: str, password: str) -> None:
    check_password(password, username)
    try:
        repo.update_user(username, password_hash=_hasher.hash(password))
    except ReviewError as exc:
        raise UserError(str(exc)) from None


def set_disabled(repo: TranscriptStore, username: str, disabled: bool) -> None:
    try:
        repo.update_user(username, disabled=disabled)
    except ReviewError as exc:
        raise UserError(str(exc)) from None


def authenticate(repo: TranscriptStore, username: str, password: str, policy: LoginPolicy,
                 clock: Callable[[], float] = time.time) -> StoredUser:
    """The user if the password is right; UserError otherwise (one message for an unknown user and a
    wrong password, so the form does not tell which names exist)."""
    user = repo.user(username)
    wrong = UserError("Wrong user name or password.")
    if user is None:
        _verify(_DUMMY_HASH, password)
        raise wrong
    now = clock()
    if user.locked_until > now:
        raise UserError(f"Too many wrong passwords: this account is locked for {user.locked_until - now:.0f} s more.")
    if not _verify(user.password_hash, password):
        failures = user.failures + 1
        lockouts = failures // policy.attempts
        if failures % policy.attempts == 0:
            wait = min(policy.lockout_s * 2 ** min(lockouts - 1, 30), max(policy.lockout_max_s, policy.lockout_s))
            repo.update_user(username, failures=failures, locked_until=now + wait)
            repo.audit(username, "login-locked", detail=f"{failures} wrong passwords; locked {wait:.0f} s")
        else:
            repo.update_user(username, failures=failures)
        raise wrong
    if user.disabled:
        raise UserError("This account is disabled. Ask the clinic's IT to enable it.")
    if user.failures:
        repo.update_user(username, failures=0, locked_until=0.0)
    if _hasher.check_needs_rehash(user.password_hash):
        repo.update_user(username, password_hash=_hasher.hash(password))
    return user


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
