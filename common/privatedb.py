"""The one way a SQLite file holding patient data is opened, by the device's session store and the
clinic's transcript store alike: private files, durable commits, deleted content zeroed.

File modes: SQLite creates the database file itself, under a private umask; it gives the -wal and
-shm files the mode of the database file (chmodding them when it creates them), so 0600 there makes
them 0600 too. Python never opens SQLite's files: closing any descriptor of a database file drops
every POSIX lock this process holds on it, SQLite's included (see common.privatefile.tighten).
"""

from __future__ import annotations

import os
import sqlite3

from common.privatefile import private_umask, tighten


class WalUnavailable(sqlite3.DatabaseError):
    """The file system or the file refuses WAL journal mode (readers would block the writer)."""


def connect_private(path: str, *, busy_timeout: float = 5.0) -> sqlite3.Connection:
    """Open (creating if needed, its folder 0700) the database at `path`: mode 0600 for it and its
    -wal/-shm, WAL, synchronous=FULL, foreign keys and secure_delete on; autocommit (callers BEGIN
    their own transactions), usable from any thread (callers serialise on their own lock)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    tighten(path)
    with private_umask():
        conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000):d}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise WalUnavailable(f"{path}: cannot use WAL journal mode (got {mode!r})")
        # FULL: a commit is on disk (WAL fsynced) when it returns, so a stored segment survives a
        # power cut, and an ack means the transcript is on the clinic's disk. NORMAL would only
        # guarantee consistency, not durability, in WAL mode.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        # Zero deleted content, so purged transcripts do not linger in free pages or slack space.
        conn.execute("PRAGMA secure_delete = ON")
        for suffix in ("-wal", "-shm"):
            tighten(path + suffix)  # left loose by older software; new ones follow the database file
    except BaseException:
        conn.close()
        raise
    return conn
