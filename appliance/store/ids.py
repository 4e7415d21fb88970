"""UUIDv7 identifiers (RFC 9562): time-sortable, so sessions and segments list in creation order.

Layout: 48-bit Unix milliseconds | version 7 | 42-bit counter (rand_a + top of rand_b) | 32 random
bits. The counter is seeded randomly each new millisecond and incremented within one, so ids from
this process sort in the order they were made even when many share a millisecond (RFC 9562 §6.2,
method 1). The trailing random bits keep ids from different processes (and forks) apart.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
import uuid

_COUNTER_BITS = 42
_COUNTER_MAX = (1 << _COUNTER_BITS) - 1
_MS_MAX = (1 << 48) - 1

_lock = threading.Lock()
_last_ms = -1
_counter = 0


def _reset_after_fork() -> None:
    # A forked child must not share the parent's lock state; the fresh seed also avoids it
    # replaying the parent's counter sequence.
    global _lock, _last_ms
    _lock = threading.Lock()
    _last_ms = -1


os.register_at_fork(after_in_child=_reset_after_fork)


def uuid7(ms: int | None = None) -> str:
    """A new UUIDv7 as a canonical string; `ms` (Unix milliseconds) overrides the wall clock."""
    global _last_ms, _counter
    now = time.time_ns() // 1_000_000 if ms is None else int(ms)
    if not 0 <= now <= _MS_MAX:
        raise ValueError(f"uuid7 timestamp out of range: {now} ms")
    with _lock:
        if now > _last_ms:
            # Top counter bit left clear so a burst within this millisecond has room to count up.
            _last_ms, _counter = now, secrets.randbits(_COUNTER_BITS - 1)
        else:
            # Same millisecond, or the clock stepped back: stay on the last timestamp and count on.
            now = _last_ms
            _counter += 1
            if _counter > _COUNTER_MAX:
                now = _last_ms = _last_ms + 1
                _counter = secrets.randbits(_COUNTER_BITS - 1)
        counter = _counter
    rand_a = counter >> 30  # 12 bits
    rand_b = ((counter & ((1 << 30) - 1)) << 32) | secrets.randbits(32)  # 62 bits
    value = (now << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return str(uuid.UUID(int=value))


def uuid7_time(value: str) -> float:
    """The creation time (Unix seconds) embedded in a UUIDv7 string."""
    parsed = uuid.UUID(value)
    if parsed.version != 7:
        raise ValueError(f"not a UUIDv7: {value}")
    return (parsed.int >> 80) / 1000.0
