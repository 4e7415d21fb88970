"""The embedded backend: one SQLite file, opened as the device opens its store (common.privatedb:
0600 with its -wal/-shm, WAL, synchronous=FULL, secure_delete), private to the server's account."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable

from clinic.store.base import TranscriptStore
from common.privatedb import connect_private
from common.privatefile import PRIVATE_MODE


class SqliteTranscriptStore(TranscriptStore):
    # IMMEDIATE: take the write lock at BEGIN, never upgrade a read lock (SQLITE_BUSY at once).
    begin = "BEGIN IMMEDIATE"
    payload_errors = (sqlite3.IntegrityError, sqlite3.InterfaceError, *TranscriptStore.payload_errors)

    def __init__(self, path: str, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        db = connect_private(path, busy_timeout=10.0)
        db.row_factory = sqlite3.Row
        super().__init__(db, clock)

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
