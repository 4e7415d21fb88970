"""Where the clinic keeps received transcripts. One small interface (TranscriptRepository) so a
PostgreSQL implementation can follow; SQLite (WAL, synchronous=FULL) is the first.

Dedupe is the primary key (session_id, revision): at-least-once delivery over MQTT becomes an
exactly-once effect here. `deliveries` counts how often a revision arrived (evidence of resends).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from appliance.sync.protocol import encode


@dataclass(frozen=True)
class StoreResult:
    session_id: str
    revision: int
    status: str  # "stored" | "duplicate" | "rejected"
    error: str = ""


@dataclass(frozen=True)
class StoredNote:
    id: int
    session_id: str
    revision: int
    template: str
    generator: str
    generator_version: str
    status: str  # ok | no_speech | error
    text: str
    body: dict[str, Any]
    created_at: float
    superseded_by: int | None


@dataclass(frozen=True)
class TranscriptSummary:
    session_id: str
    revision: int
    device_id: str
    site: str
    room: str
    segments: int
    deliveries: int
    received_at: float


class TranscriptRepository(Protocol):
    def store_many(self, payloads: Iterable[dict[str, Any]], digests: Iterable[str] | None = None,
                   ) -> list[StoreResult]: ...
    def get(self, session_id: str, revision: int, *, actor: str = ..., reason: str = ...,
            ) -> dict[str, Any] | None: ...
    def list(self, device_id: str | None = None) -> list[TranscriptSummary]: ...
    def set_device_status(self, device_id: str, status: dict[str, Any]) -> None: ...
    def device_status(self, device_id: str) -> dict[str, Any] | None: ...
    def close(self) -> None: ...


_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS transcripts (
        session_id TEXT NOT NULL,
        revision INTEGER NOT NULL,
        device_id TEXT NOT NULL,
        site TEXT NOT NULL,
        room TEXT NOT NULL,
        clinician TEXT NOT NULL,
        name TEXT NOT NULL,
        started_at REAL,
        ended_at REAL,
        templates TEXT NOT NULL,
        consent INTEGER NOT NULL,
        models TEXT NOT NULL,
        speakers TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        received_at REAL NOT NULL,
        deliveries INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (session_id, revision)
    )""",
    """CREATE TABLE IF NOT EXISTS segments (
        session_id TEXT NOT NULL,
        revision INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        id TEXT NOT NULL,
        start REAL NOT NULL,
        "end" REAL NOT NULL,
        speaker TEXT NOT NULL,
        text TEXT NOT NULL,
        PRIMARY KEY (session_id, revision, seq),
        FOREIGN KEY (session_id, revision) REFERENCES transcripts (session_id, revision)
    )""",
    "CREATE INDEX IF NOT EXISTS transcripts_device ON transcripts (device_id, received_at)",
    """CREATE TABLE IF NOT EXISTS devices (
        device_id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        updated_at REAL NOT NULL
    )""",
    # Who read which transcript, when, and why; and who copied the whole store (backups).
    """CREATE TABLE IF NOT EXISTS audit (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        session_id TEXT,
        revision INTEGER,
        detail TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX IF NOT EXISTS audit_session ON audit (session_id, at)",
    # Generated notes: every version is kept; a note for a newer revision (or a regeneration)
    # supersedes the older ones of the same session and template. `body` holds the sentences with
    # their evidence (segment ids) as JSON.
    """CREATE TABLE IF NOT EXISTS notes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL,
        revision INTEGER NOT NULL,
        template TEXT NOT NULL,
        generator TEXT NOT NULL,
        generator_version TEXT NOT NULL,
        status TEXT NOT NULL,
        text TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at REAL NOT NULL,
        superseded_by INTEGER REFERENCES notes (id),
        FOREIGN KEY (session_id, revision) REFERENCES transcripts (session_id, revision)
    )""",
    "CREATE INDEX IF NOT EXISTS notes_session ON notes (session_id, template, revision)",
]


@dataclass(frozen=True)
class AuditEntry:
    at: float
    actor: str
    action: str  # "read" | "backup"
    session_id: str | None
    revision: int | None
    detail: str


class SqliteTranscriptStore:
    """Thread-safe: the MQTT worker writes, the CLI and tests read (from any thread)."""

    def __init__(self, path: str, clock: Callable[[], float] = time.time) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # transcripts are patient data
        os.close(fd)
        self.path = path
        self._clock = clock
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode = WAL")
        # An ack promises the transcript is on disk: commit must mean fsynced.
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute("PRAGMA foreign_keys = ON")
        with self._lock:
            for sql in _SCHEMA:
                self._db.execute(sql)

    def store_many(self, payloads: Iterable[dict[str, Any]], digests: Iterable[str] | None = None,
                   ) -> list[StoreResult]:
        """Write validated transcripts in one transaction; returns per payload stored/duplicate/rejected.
        `digests`: SHA-256 of each payload as received (the device's encoding is canonical, so a
        resend hashes the same); by default the payload is re-encoded to hash it."""
        results: list[StoreResult] = []
        now = self._clock()
        items = list(payloads)
        hashes = list(digests) if digests is not None else [hashlib.sha256(encode(p)).hexdigest() for p in items]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for p, digest in zip(items, hashes, strict=True):
                    results.append(self._store_isolated(p, digest, now))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return results

    def _store_isolated(self, p: dict[str, Any], digest: str, now: float) -> StoreResult:
        """_store_one inside a savepoint: a payload SQLite cannot hold (validation should have caught
        it) is rejected on its own instead of rolling back the whole batch. Errors of the database
        itself (disk full, locked) still abort the batch: nothing is acked and the devices resend."""
        self._db.execute("SAVEPOINT one")
        try:
            result = self._store_one(p, digest, now)
        except (sqlite3.IntegrityError, sqlite3.InterfaceError, OverflowError, TypeError, KeyError) as exc:
            self._db.execute("ROLLBACK TO one")
            result = StoreResult(str(p.get("session_id")), int(p.get("revision") or 0), "rejected",
                                 f"cannot store: {type(exc).__name__}: {str(exc)[:200]}")
        self._db.execute("RELEASE one")
        return result

    def _store_one(self, p: dict[str, Any], digest: str, now: float) -> StoreResult:
        sid, rev = p["session_id"], p["revision"]
        row = self._db.execute(
            "SELECT device_id, sha256 FROM transcripts WHERE session_id = ? LIMIT 1", [sid]
        ).fetchone()
        if row is not None and row["device_id"] != p["device_id"]:
            # A session id belongs to the device that first sent it; nobody else may add to it.
            return StoreResult(sid, rev, "rejected", f"session {sid} belongs to another device")
        cur = self._db.execute(
            "UPDATE transcripts SET deliveries = deliveries + 1 WHERE session_id = ? AND revision = ? "
            "RETURNING sha256", [sid, rev],
        ).fetchone()
        if cur is not None:
            if cur["sha256"] != digest:
                return StoreResult(sid, rev, "duplicate", "content differs from the stored copy; kept the first")
            return StoreResult(sid, rev, "duplicate")
        self._db.execute(
            "INSERT INTO transcripts (session_id, revision, device_id, site, room, clinician, name, started_at, "
            "ended_at, templates, consent, models, speakers, sha256, received_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [sid, rev, p["device_id"], p["site"], p["room"], p["clinician"], p["name"], p["started_at"],
             p["ended_at"], json.dumps(p["templates"]), int(p["consent"]), json.dumps(p["models"]),
             json.dumps(p["speakers"]), digest, now],
        )
        self._db.executemany(
            'INSERT INTO segments (session_id, revision, seq, id, start, "end", speaker, text) '
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(sid, rev, i, s["id"], s["start"], s["end"], s["speaker"], s["text"])
             for i, s in enumerate(p["segments"])],
        )
        return StoreResult(sid, rev, "stored")

    def get(self, session_id: str, revision: int, *, actor: str = "clinic-server", reason: str = "",
            ) -> dict[str, Any] | None:
        """A stored transcript rebuilt as the scribe.transcript/1 payload it arrived as. Every read
        that returns one writes an audit row (actor, time, session, revision, reason) in the same
        transaction: no audit row, no transcript."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT * FROM transcripts WHERE session_id = ? AND revision = ?", [session_id, revision]
                ).fetchone()
                segs = [] if row is None else self._db.execute(
                    'SELECT id, start, "end", speaker, text FROM segments WHERE session_id = ? AND revision = ? '
                    "ORDER BY seq", [session_id, revision],
                ).fetchall()
                if row is not None:
                    self._audit(actor, "read", session_id, revision, reason)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        if row is None:
            return None
        return {
            "schema": "scribe.transcript/1", "session_id": row["session_id"], "revision": row["revision"],
            "device_id": row["device_id"], "site": row["site"], "room": row["room"],
            "clinician": row["clinician"], "name": row["name"], "started_at": row["started_at"],
            "ended_at": row["ended_at"], "templates": json.loads(row["templates"]), "consent": bool(row["consent"]),
            "models": json.loads(row["models"]), "speakers": json.loads(row["speakers"]),
            "segments": [dict(s) for s in segs],
        }

    def deliveries(self, session_id: str, revision: int) -> int:
        with self._lock:
            row = self._db.execute("SELECT deliveries FROM transcripts WHERE session_id = ? AND revision = ?",
                                   [session_id, revision]).fetchone()
        return 0 if row is None else int(row[0])

    def list(self, device_id: str | None = None) -> list[TranscriptSummary]:
        where, params = ("WHERE t.device_id = ?", [device_id]) if device_id else ("", [])
        with self._lock:
            rows = self._db.execute(
                "SELECT t.session_id, t.revision, t.device_id, t.site, t.room, t.deliveries, t.received_at, "
                "(SELECT COUNT(*) FROM segments s WHERE s.session_id = t.session_id AND s.revision = t.revision) "
                f"AS segments FROM transcripts t {where} ORDER BY t.received_at, t.session_id, t.revision", params,
            ).fetchall()
        return [TranscriptSummary(r["session_id"], r["revision"], r["device_id"], r["site"], r["room"],
                                  r["segments"], r["deliveries"], r["received_at"]) for r in rows]

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM transcripts").fetchone()[0])

    def set_device_status(self, device_id: str, status: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO devices (device_id, status, updated_at) VALUES (?, ?, ?) ON CONFLICT (device_id) "
                "DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
                [device_id, json.dumps(status), self._clock()],
            )

    def device_status(self, device_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT status FROM devices WHERE device_id = ?", [device_id]).fetchone()
        return None if row is None else json.loads(row[0])

    def devices(self) -> list[tuple[str, dict[str, Any], float]]:
        """Every device's last status message and when the clinic received it (monitoring)."""
        with self._lock:
            rows = self._db.execute("SELECT device_id, status, updated_at FROM devices ORDER BY device_id").fetchall()
        return [(r[0], json.loads(r[1]), float(r[2])) for r in rows]

    # -- audit and backup ------------------------------------------------------------------------

    def _audit(self, actor: str, action: str, session_id: str | None, revision: int | None, detail: str) -> None:
        self._db.execute(
            "INSERT INTO audit (at, actor, action, session_id, revision, detail) VALUES (?, ?, ?, ?, ?, ?)",
            [self._clock(), actor[:256], action, session_id, revision, detail[:1000]],
        )

    def audit_log(self, session_id: str | None = None) -> list[AuditEntry]:
        where, params = ("WHERE session_id = ?", [session_id]) if session_id else ("", [])
        with self._lock:
            rows = self._db.execute(f"SELECT at, actor, action, session_id, revision, detail FROM audit {where} "
                                    "ORDER BY id", params).fetchall()
        return [AuditEntry(*r) for r in rows]

    def backup(self, dest: str, *, actor: str) -> int:
        """Copy the store to a new file `dest` (mode 0600) with SQLite's online backup API, while the
        server keeps writing (a separate read connection, 1,024 pages a step, so the writer is never
        held for long), then check the copy. The backup is audited (it holds every transcript) and
        the copy includes that row. Returns the number of transcripts in the copy."""
        fd = os.open(dest, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)  # never overwrite an older backup
        os.close(fd)
        with self._lock:
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

    def add_note(self, session_id: str, revision: int, template: str, generator: str, generator_version: str,
                 status: str, text: str, body: dict[str, Any]) -> StoredNote:
        """Store a generated note; it supersedes the current note of the same session and template
        unless that one is for a newer revision (a late note for an old revision is kept, superseded)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                newer = self._db.execute(
                    "SELECT id FROM notes WHERE session_id = ? AND template = ? AND superseded_by IS NULL "
                    "AND revision > ? ORDER BY revision DESC LIMIT 1", [session_id, template, revision]).fetchone()
                row = self._db.execute(
                    "INSERT INTO notes (session_id, revision, template, generator, generator_version, status, text, "
                    "body, created_at, superseded_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
                    [session_id, revision, template, generator, generator_version, status, text, json.dumps(body),
                     self._clock(), newer[0] if newer else None]).fetchall()[0]
                if newer is None:
                    self._db.execute("UPDATE notes SET superseded_by = ? WHERE session_id = ? AND template = ? "
                                     "AND superseded_by IS NULL AND id != ?", [row["id"], session_id, template,
                                                                                row["id"]])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return _note(row)

    def revisions_without_notes(self, since: float) -> list[tuple[str, str, str, int]]:
        """(site, device_id, session_id, revision) of each session's latest revision received since
        `since` that has no note yet: stored, acked, but the server stopped before writing its notes."""
        with self._lock:
            rows = self._db.execute(
                "SELECT t.site, t.device_id, t.session_id, t.revision FROM transcripts t WHERE t.received_at >= ? "
                "AND t.revision = (SELECT MAX(revision) FROM transcripts m WHERE m.session_id = t.session_id) "
                "AND NOT EXISTS (SELECT 1 FROM notes n WHERE n.session_id = t.session_id AND n.revision = t.revision) "
                "ORDER BY t.received_at", [since]).fetchall()
        return [(r[0], r[1], r[2], int(r[3])) for r in rows]

    def notes(self, session_id: str, revision: int | None = None, current_only: bool = False) -> list[StoredNote]:
        """Notes of a session (one revision, or all), oldest first."""
        sql, params = "SELECT * FROM notes WHERE session_id = ?", [session_id]
        if revision is not None:
            sql, params = sql + " AND revision = ?", [*params, revision]
        if current_only:
            sql += " AND superseded_by IS NULL"
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id", params).fetchall()
        return [_note(r) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _note(row: sqlite3.Row) -> StoredNote:
    return StoredNote(row["id"], row["session_id"], row["revision"], row["template"], row["generator"],
                      row["generator_version"], row["status"], row["text"], json.loads(row["body"]),
                      row["created_at"], row["superseded_by"])


def open_repository(backend: str, path: str) -> SqliteTranscriptStore:
    if backend != "sqlite":
        raise ValueError(f"unknown clinic store backend {backend!r} (supported: sqlite)")
    return SqliteTranscriptStore(path)
