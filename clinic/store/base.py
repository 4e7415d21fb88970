"""Where the clinic keeps received transcripts: the records, the interface (TranscriptRepository)
and every query, written once in the SQL that SQLite and PostgreSQL share. A backend (sqlite.py,
postgres.py) only supplies the connection, how a write transaction begins, and which of its errors
mean "this one payload cannot be stored".

Dedupe is the primary key (session_id, revision): at-least-once delivery over MQTT becomes an
exactly-once effect here. `deliveries` counts how often a revision arrived (evidence of resends).
"""

from __future__ import annotations

import builtins
import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Protocol

from clinic.store.review import NOTE_COLUMNS, REVIEW_SCHEMA, ReviewTables
from common.protocol import encode


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
    # The review (review.py): who signed it, and the version it is an edit of.
    signed_by: str = ""
    signed_at: float | None = None
    edited_from: int | None = None
    edited_by: str = ""


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


# Portable DDL: DOUBLE PRECISION (PostgreSQL's REAL is 4 bytes, too coarse for times); {serial} is each
# backend's auto-numbered primary key.
SCHEMA = [
    """CREATE TABLE IF NOT EXISTS transcripts (
        session_id TEXT NOT NULL,
        revision INTEGER NOT NULL,
        device_id TEXT NOT NULL,
        site TEXT NOT NULL,
        room TEXT NOT NULL,
        clinician TEXT NOT NULL,
        name TEXT NOT NULL,
        started_at DOUBLE PRECISION,
        ended_at DOUBLE PRECISION,
        templates TEXT NOT NULL,
        consent INTEGER NOT NULL,
        models TEXT NOT NULL,
        speakers TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        received_at DOUBLE PRECISION NOT NULL,
        deliveries INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (session_id, revision)
    )""",
    """CREATE TABLE IF NOT EXISTS segments (
        session_id TEXT NOT NULL,
        revision INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        id TEXT NOT NULL,
        start DOUBLE PRECISION NOT NULL,
        "end" DOUBLE PRECISION NOT NULL,
        speaker TEXT NOT NULL,
        text TEXT NOT NULL,
        PRIMARY KEY (session_id, revision, seq),
        FOREIGN KEY (session_id, revision) REFERENCES transcripts (session_id, revision)
    )""",
    "CREATE INDEX IF NOT EXISTS transcripts_device ON transcripts (device_id, received_at)",
    """CREATE TABLE IF NOT EXISTS devices (
        device_id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    )""",
    # Who read which transcript, when, and why; and who copied the whole store (backups).
    """CREATE TABLE IF NOT EXISTS audit (
        id {serial},
        at DOUBLE PRECISION NOT NULL,
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
        id {serial},
        session_id TEXT NOT NULL,
        revision INTEGER NOT NULL,
        template TEXT NOT NULL,
        generator TEXT NOT NULL,
        generator_version TEXT NOT NULL,
        status TEXT NOT NULL,
        text TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        superseded_by INTEGER REFERENCES notes (id),
        FOREIGN KEY (session_id, revision) REFERENCES transcripts (session_id, revision)
    )""",
    "CREATE INDEX IF NOT EXISTS notes_session ON notes (session_id, template, revision)",
    *REVIEW_SCHEMA,
]


@dataclass(frozen=True)
class AuditEntry:
    at: float
    actor: str
    action: str  # "read" | "backup"
    session_id: str | None
    revision: int | None
    detail: str


class StoreUnavailable(Exception):
    """The configured store cannot be opened (server unreachable, refused login); names the store."""


class NotSupported(Exception):
    """An operation this backend leaves to the database's own tools (backups of PostgreSQL)."""


class Row(Protocol):
    """A result row: by column name and by position (sqlite3.Row and the PostgreSQL backend's rows)."""

    def __getitem__(self, key: str | int) -> Any: ...
    def keys(self) -> Sequence[str]: ...


class Connection(Protocol):
    """What the queries need of a connection: execute with `?` placeholders, rows as Row."""

    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> Any: ...
    def close(self) -> None: ...


class TranscriptStore(ReviewTables):
    """Every query of the clinic store, shared by the backends. Thread-safe: the MQTT worker
    writes, note workers, the CLI and tests read (from any thread), serialised on one lock."""

    serial_key = "INTEGER PRIMARY KEY AUTOINCREMENT"  # the DDL of an auto-numbered id
    begin = "BEGIN"  # how a write transaction starts
    # Errors that mean "this payload cannot be stored" (validation should have caught it): the
    # payload is rejected on its own. Anything else aborts the batch.
    payload_errors: tuple[type[BaseException], ...] = (OverflowError, TypeError, KeyError)

    def __init__(self, db: Connection, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock
        self._lock = threading.RLock()
        self._in_tx = False
        with self._tx():
            self._before_schema()
            for sql in SCHEMA:
                self._db.execute(sql.replace("{serial}", self.serial_key))

    def _before_schema(self) -> None:
        """Hook inside the schema transaction (PostgreSQL serialises concurrent creators there)."""

    @contextmanager
    def _tx(self) -> Iterator[None]:
        """One write transaction; a nested call joins the caller's."""
        with self._lock:
            if self._in_tx:
                yield
                return
            self._db.execute(self.begin)
            self._in_tx = True
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                with suppress(Exception):  # a failed COMMIT may have ended the transaction already
                    self._db.execute("ROLLBACK")
                raise
            finally:
                self._in_tx = False

    def store_many(self, payloads: Iterable[dict[str, Any]], digests: Iterable[str] | None = None,
                   ) -> list[StoreResult]:
        """Write validated transcripts in one transaction; returns per payload stored/duplicate/rejected.
        `digests`: SHA-256 of each payload as received (the device's encoding is canonical, so a
        resend hashes the same); by default the payload is re-encoded to hash it."""
        results: list[StoreResult] = []
        now = self._clock()
        items = list(payloads)
        hashes = list(digests) if digests is not None else [hashlib.sha256(encode(p)).hexdigest() for p in items]
        with self._tx():
            for p, digest in zip(items, hashes, strict=True):
                results.append(self._store_isolated(p, digest, now))
        return results

    def _store_isolated(self, p: dict[str, Any], digest: str, now: float) -> StoreResult:
        """_store_one inside a savepoint: a payload the database cannot hold (validation should have caught
        it) is rejected on its own instead of rolling back the whole batch. Errors of the database
        itself (disk full, locked) still abort the batch: nothing is acked and the devices resend."""
        self._db.execute("SAVEPOINT one")
        try:
            result = self._store_one(p, digest, now)
        except self.payload_errors as exc:
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
        with self._tx():
            row = self._db.execute(
                "SELECT * FROM transcripts WHERE session_id = ? AND revision = ?", [session_id, revision]
            ).fetchone()
            segs = [] if row is None else self._db.execute(
                'SELECT id, start, "end", speaker, text FROM segments WHERE session_id = ? AND revision = ? '
                "ORDER BY seq", [session_id, revision],
            ).fetchall()
            if row is not None:
                self._audit(actor, "read", session_id, revision, reason)
        if row is None:
            return None
        return {
            "schema": "scribe.transcript/1", "session_id": row["session_id"], "revision": row["revision"],
            "device_id": row["device_id"], "site": row["site"], "room": row["room"],
            "clinician": row["clinician"], "name": row["name"], "started_at": row["started_at"],
            "ended_at": row["ended_at"], "templates": json.loads(row["templates"]), "consent": bool(row["consent"]),
            "models": json.loads(row["models"]), "speakers": json.loads(row["speakers"]),
            "segments": [{k: s[k] for k in s.keys()} for s in segs],  # noqa: SIM118 (Row is not a dict)
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

    def devices(self) -> builtins.list[tuple[str, dict[str, Any], float]]:
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

    def audit_log(self, session_id: str | None = None) -> builtins.list[AuditEntry]:
        where, params = ("WHERE session_id = ?", [session_id]) if session_id else ("", [])
        with self._lock:
            rows = self._db.execute(f"SELECT at, actor, action, session_id, revision, detail FROM audit {where} "
                                    "ORDER BY id", params).fetchall()
        return [AuditEntry(*r) for r in rows]

    def backup(self, dest: str, *, actor: str) -> int:
        """Copy the whole store to the new file `dest`; see the backend."""
        raise NotSupported(f"{type(self).__name__} has no file backup")

    def add_note(self, session_id: str, revision: int, template: str, generator: str, generator_version: str,
                 status: str, text: str, body: dict[str, Any]) -> StoredNote:
        """Store a generated note; it supersedes the current note of the same session and template
        unless that one is for a newer revision (a late note for an old revision is kept, superseded)."""
        with self._tx():
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
                                 "AND superseded_by IS NULL AND id != ?", [row["id"], session_id, template, row["id"]])
        return _note(row)

    def revisions_without_notes(self, since: float) -> builtins.list[tuple[str, str, str, int]]:
        """(site, device_id, session_id, revision) of each session's latest revision received since
        `since` that has no note yet: stored, acked, but the server stopped before writing its notes."""
        with self._lock:
            rows = self._db.execute(
                "SELECT t.site, t.device_id, t.session_id, t.revision FROM transcripts t WHERE t.received_at >= ? "
                "AND t.revision = (SELECT MAX(revision) FROM transcripts m WHERE m.session_id = t.session_id) "
                "AND NOT EXISTS (SELECT 1 FROM notes n WHERE n.session_id = t.session_id AND n.revision = t.revision) "
                "ORDER BY t.received_at", [since]).fetchall()
        return [(r[0], r[1], r[2], int(r[3])) for r in rows]

    def notes(self, session_id: str, revision: int | None = None,
              current_only: bool = False) -> builtins.list[StoredNote]:
        """Notes of a session (one revision, or all), oldest first."""
        sql = NOTE_COLUMNS + " WHERE n.session_id = ?"
        params: builtins.list[object] = [session_id]
        if revision is not None:
            sql, params = sql + " AND n.revision = ?", [*params, revision]
        if current_only:
            sql += " AND n.superseded_by IS NULL"
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY n.id", params).fetchall()
        return [_note(r) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _note(row: Row) -> StoredNote:
    review = {k: row[k] for k in row.keys()} if "signed_at" in row.keys() else {}  # noqa: SIM118 (a Row protocol)
    return StoredNote(row["id"], row["session_id"], row["revision"], row["template"], row["generator"],
                      row["generator_version"], row["status"], row["text"], json.loads(row["body"]),
                      row["created_at"], row["superseded_by"], review.get("signed_by") or "",
                      review.get("signed_at"), review.get("based_on"), review.get("edited_by") or "")

