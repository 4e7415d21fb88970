"""The session store: sessions, their lifecycle, crash recovery, purge and maintenance.

Every public method is one transaction. Transcript text is only reachable via read_transcript()
(edits.py), which audits each read; Session records carry metadata only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from appliance.store.base import StoreBase, connect
from appliance.store.ids import uuid7
from appliance.store.models import AuditEvent, Session
from appliance.store.notes import NotesMixin
from appliance.store.outbox import OutboxMixin
from appliance.store.revise import ReviseMixin
from appliance.store.schema import migrate, schema_version
from appliance.store.search import SearchMixin
from appliance.store.states import LIVE_STATES, State, check_transition, parse_state
from appliance.store.voiceprints import VoicePrintsMixin

_CHECKPOINT_MODES = ("PASSIVE", "FULL", "RESTART", "TRUNCATE")


def _clean_templates(templates: Iterable[str]) -> list[str]:
    if isinstance(templates, str):
        raise TypeError("templates must be a list of template names, not one string")
    cleaned: list[str] = []
    for name in templates:
        name = str(name).strip()
        if not name:
            raise ValueError("template names must not be empty")
        if name not in cleaned:
            cleaned.append(name)
    return cleaned


class SessionStore(ReviseMixin, SearchMixin, OutboxMixin, NotesMixin, VoicePrintsMixin, StoreBase):
    """Thread-safe handle on the session database; open it with open_store()."""

    # -- sessions ------------------------------------------------------------------------------

    def create_session(
        self,
        name: str,
        room: str,
        clinician: str,
        device_id: str,
        site: str,
        templates: Sequence[str] = (),
        consent: bool = False,
        *,
        actor: str = "panel",
    ) -> Session:
        """A new idle session at revision 1."""
        now = self._clock()
        session_id = uuid7(int(now * 1000))
        templates = _clean_templates(templates)
        with self._tx() as db:
            db.table("sessions").insert(
                {
                    "id": session_id,
                    "name": name.strip(),
                    "room": room,
                    "clinician": clinician.strip(),
                    "device_id": device_id,
                    "site": site,
                    "state": State.IDLE.value,
                    "interrupted": 0,
                    "consent": int(bool(consent)),
                    "templates": json.dumps(templates),
                    "created_at": now,
                    "updated_at": now,
                    "recorded_seconds": 0.0,
                    "revision": 1,
                }
            )
            self._audit(
                actor, "create", session_id,
                {"room": room, "device_id": device_id, "site": site, "templates": templates,
                 "consent": bool(consent)},
            )
            return Session.from_row(self._session_row(session_id))

    def get_session(self, session_id: str) -> Session:
        """Session metadata (no transcript, so not audited). Raises SessionNotFound."""
        with self._lock:
            return Session.from_row(self._session_row(session_id))

    def list_sessions(self, states: Iterable[State | str] | None = None) -> list[Session]:
        """Sessions, newest first, optionally only those in `states`."""
        if states is None:
            rows = self._rows("SELECT * FROM sessions ORDER BY created_at DESC, id DESC")
        else:
            wanted = sorted({parse_state(s).value for s in states})
            if not wanted:
                return []
            marks = ", ".join("?" * len(wanted))
            rows = self._rows(
                f"SELECT * FROM sessions WHERE state IN ({marks}) ORDER BY created_at DESC, id DESC", wanted
            )
        return [Session.from_row(r) for r in rows]

    def transition(self, session_id: str, new_state: State | str, actor: str) -> Session:
        """Move a session along the workflow (see states.py) or raise IllegalTransition.
        Queued goes through the outbox and purged through purge(), so their side effects are
        never skipped."""
        target = parse_state(new_state)
        if target is State.PURGED:
            return self.purge(session_id, actor)
        with self._tx():
            row = self._session_row(session_id)
            if target is State.QUEUED:
                self._enqueue_locked(row, actor)
            else:
                self._apply_transition(row, target, actor)
            return Session.from_row(self._session_row(session_id))

    def _set_field(
        self, session_id: str, actor: str, action: str, detail: dict[str, Any], **fields: Any
    ) -> Session:
        """Change session metadata. Once recording has begun the metadata is part of what is sent
        to the clinic, so a change is a user action that bumps the revision."""
        with self._tx():
            row = self._session_row(session_id)
            self._check_not_purged(row)
            if all(row[k] == v for k, v in fields.items()):
                return Session.from_row(row)
            self._update_session(session_id, **fields)
            if row["state"] != State.IDLE:
                detail = {**detail, "revision": self._bump_revision(session_id)}
            self._audit(actor, action, session_id, detail)
            return Session.from_row(self._session_row(session_id))

    def set_consent(self, session_id: str, consent: bool, actor: str) -> Session:
        return self._set_field(session_id, actor, "set:consent", {"consent": bool(consent)},
                               consent=int(bool(consent)))

    def set_templates(self, session_id: str, templates: Sequence[str], actor: str) -> Session:
        cleaned = _clean_templates(templates)
        return self._set_field(session_id, actor, "set:templates", {"templates": cleaned},
                               templates=json.dumps(cleaned))

    def set_name(self, session_id: str, name: str, actor: str) -> Session:
        # The name identifies the patient: audited as an event, never with its value.
        return self._set_field(session_id, actor, "set:name", {}, name=name.strip())

    def add_recorded_seconds(self, session_id: str, seconds: float) -> float:
        """Add captured audio time (not audited: it carries nothing private). Returns the total."""
        if seconds < 0:
            raise ValueError(f"recorded seconds must not be negative: {seconds}")
        with self._tx():
            row = self._session_row(session_id)
            return self.set_recorded_seconds(session_id, float(row["recorded_seconds"]) + float(seconds))

    def set_recorded_seconds(self, session_id: str, seconds: float) -> float:
        """Set the total captured audio time; idempotent, so a periodic status loop can call it."""
        if seconds < 0:
            raise ValueError(f"recorded seconds must not be negative: {seconds}")
        with self._tx() as db:
            self._check_not_purged(self._session_row(session_id))
            db.table("sessions").update(
                session_id, {"recorded_seconds": float(seconds), "updated_at": self._clock()}
            )
            return float(seconds)

    def recover_interrupted(self, actor: str = "daemon") -> list[str]:
        """At daemon start: sessions a crash left recording or paused become paused and flagged
        interrupted, so nothing claims to be recording while no capture runs. Returns their ids."""
        live = sorted(s.value for s in LIVE_STATES)
        with self._tx():
            rows = self._rows(
                "SELECT id, state FROM sessions WHERE state IN (?, ?) ORDER BY id", live
            )
            for row in rows:
                self._update_session(row["id"], state=State.PAUSED.value, interrupted=1)
                self._audit(actor, "recover", row["id"], {"from": row["state"], "to": State.PAUSED.value})
        return [r["id"] for r in rows]

    def purgeable(self, synced_before: float) -> list[str]:
        """Synced sessions acknowledged by the clinic before `synced_before`: due for retention purge.
        Only if the clinic acknowledged the current revision: an edit it never received is kept."""
        rows = self._rows(
            "SELECT id FROM sessions AS s WHERE state = ? AND synced_at <= ? AND EXISTS (SELECT 1 FROM outbox "
            "AS o WHERE o.session_id = s.id AND o.revision = s.revision AND o.acked_at IS NOT NULL) "
            "ORDER BY synced_at",
            [State.SYNCED.value, synced_before],
        )
        return [r["id"] for r in rows]

    def purge(self, session_id: str, actor: str, *, reason: str = "retention") -> Session:
        """Erase the transcript (every revision), speaker names, notes, outbox rows and the patient name
        and clinician; the session row stays as a 'purged' tombstone (with `reason`) and the audit
        trail keeps the event. secure_delete zeroes the freed bytes; a TRUNCATE checkpoint then
        empties the WAL, which would otherwise still hold the old pages, and writes the zeroed
        pages over the old ones in the database file. A reader in another process can hold that
        back: then `scrub_pending` stays True and scrub() must be called again (retention does,
        until done)."""
        with self._tx():
            session = self._purge_locked(session_id, actor, reason)
        self._scrub_after_purge()
        return session

    def _purge_locked(self, session_id: str, actor: str, reason: str) -> Session:
        with self._tx() as db:
            row = self._session_row(session_id)
            check_transition(session_id, row["state"], State.PURGED)
            counts = {
                table: db.execute(f"DELETE FROM {table} WHERE session_id = ?", [session_id]).rowcount
                for table in ("segments", "speakers", "notes", "outbox", "voiceprints")
            }
            self._update_session(session_id, name="", clinician="", purge_reason=reason)
            self._apply_transition(row, State.PURGED, actor, segment_rows=counts["segments"],
                                   note_rows=counts["notes"], outbox_rows=counts["outbox"], reason=reason)
            return Session.from_row(self._session_row(session_id))

    def discard(self, session_id: str, actor: str, why: str) -> Session:
        """Throw a visit away on the clinician's word (wrong patient, consent withdrawn): purged
        exactly like retention, before or after it was sent; `why` (a short code, never free
        text about the patient) is kept in the audit trail."""
        if not why:
            raise ValueError("discarding a visit needs a reason (it is audited)")
        with self._tx():
            row = self._session_row(session_id)
            check_transition(session_id, row["state"], State.PURGED)
            self._audit(actor, "discard", session_id, {"why": why, "from": row["state"]})
            session = self._purge_locked(session_id, actor, "discarded")
        self._scrub_after_purge()
        return session

    def _scrub_after_purge(self) -> None:
        self.scrub_pending = True
        self.scrub()

    def scrub(self, wait_s: float = 0.2) -> bool:
        """TRUNCATE checkpoint after a purge; True once it completed (the purged text is then in
        neither file). A reader holding an old snapshot blocks it: waits at most `wait_s` (not the
        store's busy timeout, so a visit's writes are not held up), then leaves it for a retry."""
        with self._lock:
            timeout = self._db.execute("PRAGMA busy_timeout").fetchone()[0]
            self._db.execute(f"PRAGMA busy_timeout = {int(wait_s * 1000):d}")
            try:
                busy, frames, _done = self.checkpoint("TRUNCATE")
            finally:
                self._db.execute(f"PRAGMA busy_timeout = {int(timeout):d}")
            self.scrub_pending = bool(busy or frames)
        return not self.scrub_pending

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Run several store calls as one transaction (one fsync): the sync reads and marks
        many outbox rows at once. Everything inside commits or rolls back together."""
        with self._tx():
            yield

    # -- audit ---------------------------------------------------------------------------------

    def audit(self, actor: str, action: str, session_id: str | None = None, **detail: Any) -> None:
        """Record an event from another component (e.g. panel unlock). No transcript text."""
        with self._tx():
            self._audit(actor, action, session_id, detail)

    def audit_events(self, session_id: str | None = None, limit: int | None = None) -> list[AuditEvent]:
        """Audit events, oldest first; the last `limit` if given."""
        where, params = ("WHERE session_id = ?", [session_id]) if session_id is not None else ("", [])
        sql = f"SELECT * FROM audit {where} ORDER BY id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit):d}"
        return [AuditEvent.from_row(r) for r in reversed(self._rows(sql, params))]

    # -- maintenance ---------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        with self._lock:
            return schema_version(self._db)

    def checkpoint(self, mode: str = "TRUNCATE") -> tuple[int, int, int]:
        """Copy the WAL into the database file; TRUNCATE also empties the WAL file.
        Returns SQLite's (busy, wal_frames, checkpointed_frames)."""
        mode = mode.upper()
        if mode not in _CHECKPOINT_MODES:
            raise ValueError(f"checkpoint mode must be one of {', '.join(_CHECKPOINT_MODES)}")
        with self._lock:
            busy, log, done = self._db.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        return int(busy), int(log), int(done)

    def vacuum(self) -> None:
        """Rebuild the file compactly (slow on a large store: for maintenance windows only)."""
        with self._lock:
            self._db.vacuum()
        self.checkpoint()

    def integrity_check(self) -> list[str]:
        """SQLite's integrity check: ['ok'] when the file is sound."""
        return [r["integrity_check"] for r in self._rows("PRAGMA integrity_check")]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SessionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(
    path: str, *, clock: Callable[[], float] = time.time, busy_timeout: float = 5.0
) -> SessionStore:
    """Open (creating or migrating as needed) the session database at `path`.

    Raises SchemaVersionError if the file was written by newer software.
    """
    db = connect(path, busy_timeout=busy_timeout)
    try:
        migrate(db, where=path)
    except BaseException:
        db.close()
        raise
    return SessionStore(db, path, clock)
