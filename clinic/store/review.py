"""The clinic store's tables for the web view: users of the clinic web view, and the review of notes
(edits and signatures). Mixed into TranscriptStore (base.py), whose connection, transactions and
audit table it uses; the SQL is the portable subset base.py documents, so both backends run it.

A note row is never changed after it is written except for `superseded_by`. An edit writes a new
note row (same session, revision and template) that supersedes the edited one, and records what it
was based on in `note_edits`; signing adds a `note_signatures` row. A signed note cannot be signed
again or edited in place: editing it makes a new, unsigned version.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clinic.store.base import Connection, StoredNote

REVIEW_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS clinic_users (
        username TEXT PRIMARY KEY,
        display_name TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0,
        failures INTEGER NOT NULL DEFAULT 0,
        locked_until DOUBLE PRECISION NOT NULL DEFAULT 0,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS note_edits (
        note_id INTEGER PRIMARY KEY REFERENCES notes (id),
        based_on INTEGER NOT NULL REFERENCES notes (id),
        edited_by TEXT NOT NULL,
        edited_at DOUBLE PRECISION NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS note_signatures (
        note_id INTEGER PRIMARY KEY REFERENCES notes (id),
        signed_by TEXT NOT NULL,
        signed_at DOUBLE PRECISION NOT NULL,
        sha256 TEXT NOT NULL
    )""",
]

NOTE_COLUMNS = ("SELECT n.*, s.signed_by, s.signed_at, e.based_on, e.edited_by FROM notes n "
                "LEFT JOIN note_signatures s ON s.note_id = n.id LEFT JOIN note_edits e ON e.note_id = n.id")


class ReviewError(ValueError):
    """An edit or signature the note's state does not allow; the message says why."""


@dataclass(frozen=True)
class StoredUser:
    username: str
    display_name: str
    password_hash: str
    disabled: bool
    failures: int
    locked_until: float


@dataclass(frozen=True)
class SessionOverview:
    """The latest revision of a session, for the web view's list (no transcript text)."""

    session_id: str
    revision: int
    site: str
    device_id: str
    room: str
    clinician: str
    name: str
    started_at: float | None
    received_at: float
    notes: int
    signed: int


class ReviewTables:
    _db: Connection
    _lock: threading.RLock  # reads; writes go through _tx()
    _clock: Callable[[], float]

    def _tx(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _audit(self, actor: str, action: str, session_id: str | None, revision: int | None, detail: str) -> None:
        raise NotImplementedError

    def audit(self, actor: str, action: str, session_id: str | None = None, revision: int | None = None,
              detail: str = "") -> None:
        """One audit row (the web view's reads of notes, logins, edits, signatures, exports)."""
        with self._tx():
            self._audit(actor, action, session_id, revision, detail)

    # -- users -----------------------------------------------------------------------------------

    def add_user(self, username: str, display_name: str, password_hash: str) -> None:
        now = self._clock()
        with self._tx():
            if self.user(username) is not None:
                raise ReviewError(f"user {username!r} exists (use `clinic users passwd`)")
            self._db.execute("INSERT INTO clinic_users (username, display_name, password_hash, created_at, "
                             "updated_at) VALUES (?, ?, ?, ?, ?)", [username, display_name, password_hash, now, now])

    def user(self, username: str) -> StoredUser | None:
        with self._lock:
            row = self._db.execute("SELECT username, display_name, password_hash, disabled, failures, locked_until "
                                   "FROM clinic_users WHERE username = ?", [username]).fetchone()
        return None if row is None else StoredUser(row[0], row[1], row[2], bool(row[3]), int(row[4]), float(row[5]))

    def users(self) -> list[StoredUser]:
        with self._lock:
            names = [r[0] for r in self._db.execute("SELECT username FROM clinic_users ORDER BY username").fetchall()]
        return [u for u in map(self.user, names) if u is not None]

    def update_user(self, username: str, *, password_hash: str | None = None, disabled: bool | None = None,
                    failures: int | None = None, locked_until: float | None = None) -> None:
        """Change what is given; a new password also clears the failure count and any lockout."""
        changes: dict[str, Any] = {"updated_at": self._clock()}
        if password_hash is not None:
            changes.update(password_hash=password_hash, failures=0, locked_until=0.0)
        if disabled is not None:
            changes["disabled"] = int(disabled)
        if failures is not None:
            changes["failures"] = failures
        if locked_until is not None:
            changes["locked_until"] = locked_until
        assignments = ", ".join(f"{column} = ?" for column in changes)  # column names are ours, not input
        with self._tx():
            if self._db.execute("SELECT 1 FROM clinic_users WHERE username = ?", [username]).fetchone() is None:
                raise ReviewError(f"no user {username!r} (see `clinic users list`)")
            self._db.execute(f"UPDATE clinic_users SET {assignments} WHERE username = ?", [*changes.values(), username])

    # -- sessions and notes for the web view -----------------------------------------------------

    def sessions_overview(self, since: float = 0.0, until: float = 1e12) -> list[SessionOverview]:
        """Each session's latest revision started (or, without a start, received) in [since, until),
        newest first, with how many current notes it has and how many of them are signed."""
        with self._lock:
            rows = self._db.execute(
                "SELECT t.session_id, t.revision, t.site, t.device_id, t.room, t.clinician, t.name, t.started_at, "
                "t.received_at, "
                "(SELECT COUNT(*) FROM notes n WHERE n.session_id = t.session_id AND n.superseded_by IS NULL), "
                "(SELECT COUNT(*) FROM notes n JOIN note_signatures s ON s.note_id = n.id "
                " WHERE n.session_id = t.session_id AND n.superseded_by IS NULL) "
                "FROM transcripts t WHERE t.revision = (SELECT MAX(m.revision) FROM transcripts m "
                "WHERE m.session_id = t.session_id) AND COALESCE(t.started_at, t.received_at) >= ? "
                "AND COALESCE(t.started_at, t.received_at) < ? "
                "ORDER BY COALESCE(t.started_at, t.received_at) DESC, t.session_id", [since, until]).fetchall()
        return [SessionOverview(r[0], int(r[1]), r[2], r[3], r[4], r[5], r[6], r[7], float(r[8]), int(r[9]),
                                int(r[10])) for r in rows]

    def session_meta(self, session_id: str, revision: int | None = None) -> dict[str, Any] | None:
        """Who, where and when of a session's revision (the latest by default), without its segments:
        not a transcript read."""
        keys = ("session_id", "revision", "device_id", "site", "room", "clinician", "name", "started_at",
                "ended_at", "templates", "received_at")
        sql = f"SELECT {', '.join(keys)} FROM transcripts WHERE session_id = ?"
        params: list[Any] = [session_id]
        if revision is not None:
            sql, params = sql + " AND revision = ?", [*params, revision]
        with self._lock:
            row = self._db.execute(sql + " ORDER BY revision DESC LIMIT 1", params).fetchone()
        if row is None:
            return None
        meta = {k: row[i] for i, k in enumerate(keys)}
        meta["templates"] = json.loads(meta["templates"])
        return meta

    def note(self, note_id: int) -> StoredNote | None:
        with self._lock:
            row = self._db.execute(NOTE_COLUMNS + " WHERE n.id = ?", [note_id]).fetchone()
        return None if row is None else _to_note(row)

    def edit_note(self, note_id: int, text: str, body: dict[str, Any], *, editor: str, actor: str = "",
                  ) -> StoredNote:
        """A new version of a current note with `text` and `body`, superseding it (signed or not).
        `editor`: the name kept with the version; `actor`: the account in the audit row (default: editor)."""
        now = self._clock()
        with self._tx():
            old = self._db.execute("SELECT * FROM notes WHERE id = ?", [note_id]).fetchone()
            if old is None:
                raise ReviewError(f"no note {note_id}")
            if old["superseded_by"] is not None:
                raise ReviewError(f"note {note_id} has been replaced by note {old['superseded_by']}; "
                                  "edit the current version")
            new_id = self._db.execute(
                "INSERT INTO notes (session_id, revision, template, generator, generator_version, status, text, "
                "body, created_at, superseded_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL) RETURNING id",
                [old["session_id"], old["revision"], old["template"], old["generator"], old["generator_version"],
                 old["status"], text, json.dumps(body), now]).fetchone()[0]
            self._db.execute("INSERT INTO note_edits (note_id, based_on, edited_by, edited_at) VALUES (?, ?, ?, ?)",
                             [new_id, note_id, editor, now])
            self._db.execute("UPDATE notes SET superseded_by = ? WHERE id = ?", [new_id, note_id])
            self._audit(actor or editor, "edit-note", old["session_id"], old["revision"],
                        f"note {note_id} -> {new_id}")
            row = self._db.execute(NOTE_COLUMNS + " WHERE n.id = ?", [new_id]).fetchone()
        return _to_note(row)

    def sign_note(self, note_id: int, *, signer: str, actor: str = "") -> StoredNote:
        """Sign a current note; its text and body are fingerprinted with the signature. `signer`: the name
        shown with it; `actor`: the account in the audit row (default: signer)."""
        with self._tx():
            row = self._db.execute(NOTE_COLUMNS + " WHERE n.id = ?", [note_id]).fetchone()
            if row is None:
                raise ReviewError(f"no note {note_id}")
            if row["signed_at"] is not None:
                raise ReviewError(f"note {note_id} is already signed by {row['signed_by']}")
            if row["superseded_by"] is not None:
                raise ReviewError(f"note {note_id} has been replaced by note {row['superseded_by']}; "
                                  "sign the current version")
            digest = hashlib.sha256(f"{row['text']}\0{row['body']}".encode()).hexdigest()
            self._db.execute("INSERT INTO note_signatures (note_id, signed_by, signed_at, sha256) VALUES (?, ?, ?, ?)",
                             [note_id, signer, self._clock(), digest])
            self._audit(actor or signer, "sign-note", row["session_id"], row["revision"], f"note {note_id}")
            row = self._db.execute(NOTE_COLUMNS + " WHERE n.id = ?", [note_id]).fetchone()
        return _to_note(row)


def _to_note(row: Any) -> StoredNote:
    from clinic.store.base import _note  # base imports this module

    return _note(row)
