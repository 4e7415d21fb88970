"""The clinic's store of received transcripts, notes, device status and audit.

    base.py      records, the interface, every query (SQL shared by both backends)
    sqlite.py    embedded default: one private SQLite file
    postgres.py  PostgreSQL by URL, for a health system

Adding a table or query: put it in base.py (SCHEMA, a TranscriptStore method), in SQL both
databases accept: `?` placeholders, TEXT / INTEGER / DOUBLE PRECISION (not REAL: 4 bytes in
PostgreSQL), `id {serial}` for an auto-numbered key, RETURNING and ON CONFLICT as written there,
no PRAGMA or SQLite-only functions; writes inside `with self._tx():`. The tests that take the
`clinic_store` fixture (tests/conftest.py) run it on both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clinic.store.base import (
    AuditEntry,
    NotSupported,
    StoredNote,
    StoreResult,
    StoreUnavailable,
    TranscriptRepository,
    TranscriptStore,
    TranscriptSummary,
)
from clinic.store.sqlite import SqliteTranscriptStore

if TYPE_CHECKING:
    from clinic.config import StoreConfig

__all__ = ["AuditEntry", "NotSupported", "SqliteTranscriptStore", "StoreResult", "StoreUnavailable", "StoredNote",
           "TranscriptRepository", "TranscriptStore", "TranscriptSummary", "open_repository"]


def open_repository(cfg: StoreConfig) -> TranscriptStore:
    """The store the config names ([store] backend, path or url)."""
    if cfg.backend == "postgresql":
        from clinic.store.postgres import PostgresTranscriptStore  # psycopg only where it is used

        return PostgresTranscriptStore(cfg.url)
    return SqliteTranscriptStore(cfg.path)
