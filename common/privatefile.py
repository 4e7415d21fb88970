"""Files only their owner may read, for the device's session store and the clinic's transcript
store alike (both hold patient data in SQLite files; neither reaches into the other's internals)."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager

PRIVATE_MODE = 0o600

_UMASK_LOCK = threading.Lock()  # umask is per process: two openings must not restore each other's


def tighten(path: str) -> None:
    """Give an existing file mode 0600 if it is looser (an old copy, or a restore copied in). By
    path, never by opening it: closing any descriptor of a database file drops every POSIX lock
    this process holds on it, SQLite's included (then another process may reset the -shm under
    our mapping: SIGBUS)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    if stat.S_IMODE(info.st_mode) != PRIVATE_MODE and info.st_uid == os.geteuid():
        os.chmod(path, PRIVATE_MODE)


@contextmanager
def private_umask() -> Iterator[None]:
    """Files created inside are readable by their owner only, whatever the process umask."""
    with _UMASK_LOCK:
        old = os.umask(0o077)
        os.umask(old | 0o077)
        try:
            yield
        finally:
            os.umask(old)
