"""Logging for the daemon: structured journald records under systemd, plain stderr elsewhere.

Records carry context through `extra=` (use `log_fields(session_id=..., ...)`); under
journald those become queryable fields (`journalctl SESSION_ID=...`), on stderr they are
appended as key=value. Never put transcript text or audio into log fields.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping
from typing import IO, Any

try:
    from systemd.journal import JournalHandler as _JournalHandler
except ImportError:  # developer machines without libsystemd
    _JournalHandler = None

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_INSTALLED = "_appliance_handler"
_FIELD_BAD = re.compile(r"[^A-Z0-9_]")


def journal_field_name(key: str) -> str | None:
    """`session_id` -> `SESSION_ID`; None when no valid journal field name remains.

    journald accepts only [A-Z0-9_], not starting with a digit, and reserves a leading '_'
    for trusted fields it adds itself, so those are stripped rather than passed through.
    """
    name = _FIELD_BAD.sub("_", key.upper()).lstrip("_")
    if not name:
        return None
    if name[0].isdigit():
        name = "F_" + name
    return name[:64]


def journal_fields(extra: Mapping[str, Any]) -> dict[str, str]:
    """Map a record's extras to journal fields; None values are dropped."""
    out: dict[str, str] = {}
    for key, value in extra.items():
        name = journal_field_name(key)
        if name is not None and value is not None:
            out[name] = str(value)
    return out


def record_extras(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra=` attributes of a record (not the standard ones, not already mapped)."""
    return {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS and not k.isupper()}


def log_fields(**kw: Any) -> dict[str, Any]:
    """Build an `extra=` dict; keys clashing with LogRecord attributes get a trailing '_'.

    (logging raises KeyError when extra= overrides e.g. `name` or `message`.)
    """
    return {(f"{k}_" if k in _RECORD_ATTRS else k): v for k, v in kw.items() if v is not None}


class JournalFieldsFilter(logging.Filter):
    """Copy a record's extras onto it under their journal names (session_id -> SESSION_ID)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in journal_fields(record_extras(record)).items():
            setattr(record, name, value)
        return True


class _ExtrasFormatter(logging.Formatter):
    """Plain text with the record's extras appended as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = record_extras(record)
        if extras:
            text += " [" + " ".join(f"{k}={v}" for k, v in sorted(extras.items())) + "]"
        return text


def stderr_is_journal(env: Mapping[str, str] | None = None, stream: IO[str] | None = None) -> bool:
    """True when stderr is connected to journald (JOURNAL_STREAM=<dev>:<inode> matches it).

    Comparing the device/inode, not just the variable's presence, is what systemd.exec(5)
    asks for: the variable is inherited by children whose stderr may be redirected.
    """
    env = os.environ if env is None else env
    stream = sys.stderr if stream is None else stream
    value = env.get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep:
        return False
    try:
        st = os.fstat(stream.fileno())
        return (st.st_dev, st.st_ino) == (int(dev), int(ino))
    except (ValueError, OSError, AttributeError):
        return False


def setup_logging(level: str, *, component: str = "appliance") -> logging.Handler:
    """Configure the root logger once (repeat calls replace the handler) and return the handler."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _INSTALLED, False)]:
        root.removeHandler(old)
        old.close()

    handler: logging.Handler
    if stderr_is_journal() and _JournalHandler is not None:
        handler = _JournalHandler(SYSLOG_IDENTIFIER=component)
        handler.addFilter(JournalFieldsFilter())
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        if stderr_is_journal():  # journald without the bindings: it timestamps lines itself
            handler.setFormatter(_ExtrasFormatter("%(levelname)s %(name)s: %(message)s"))
        else:
            handler.setFormatter(
                _ExtrasFormatter(f"%(asctime)s %(levelname)s {component} %(name)s: %(message)s")
            )
    setattr(handler, _INSTALLED, True)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
