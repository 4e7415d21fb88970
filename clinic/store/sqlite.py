"""The embedded backend: one SQLite file (WAL, synchronous=FULL, secure_delete), private to the
server's account like the device's store."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable

from appliance.privatefile import PRIVATE_MODE, private_umask, tighten
from clinic.store.base import TranscriptStore


def connect_private(path: str, timeout: float = 10.0) -> sqlite3.Connection:
    """Open (creating if needed) the store so that the database and its -wal/-shm are 0600.
    SQLite creates the database file under the process umask and gives -wal/-shm the database
    file's mode, so the umask is narrowed while the connection is made and the WAL first opened."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        tighten(path + suffix)
    with private_umask():
        db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode = WAL")
            # An ack promises the transcript is on disk: commit must mean fsynced.
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA foreign_keys = ON")
            # Zero deleted content, so removed patient data does not linger in free pages.
            db.execute("PRAGMA secure_delete = ON")
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # opens -wal and -shm now
        except BaseException:
            db.close()
            raise
    return db


class SqliteTranscriptStore(TranscriptStore):
    # IMMEDIATE: take the write lock at BEGIN, never upgrade a read lock (SQLITE_BUSY at once).
    begin = "BEGIN IMMEDIATE"
    payload_errors = (sqlite3.IntegrityError, sqlite3.InterfaceError, *TranscriptStore.payload_errors)

    def __init__(self, path: str, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        super().__init__(connect_private(path), clock)

    def backup(self, dest: str, *, actor: str) -> int:
        """Copy the store to a new file `dest` (mode 0600) with SQLite's online backup API, while the
        server keeps writing (a separate read connection, 1,024 pages a step, so the writer is never
        held for long), then check the copy. The backup is audited (it holds every transcript) and
        the copy includes that row. Returns the number of transcripts in the copy."""
        # Created here, before any connection to it exists: never overwrites an older backup.
        os.close(os.open(dest, os.O_RDWR | os.O_CREAT | os.O_EXCL, PRIVATE_MODE))
        with self._tx():
            self._audit(actor, "backup", None, None, f"to {os.path.abspath(dest)}")
        src = sqlite3.connect(self.path, timeout=10)  # its own connection: reads do not block the writer
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst, pages=1024)
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"backup {dest} failed its integrity check: {check}")
            return int(dst.execute("SELECT COUNT(*) FROM transcripts").fetchone()[0])
        finally:
            dst.close()
            src.close()
