"""Notes sent back by the clinic: stored per (session, revision, template), read only audited.

A note is clinical content like the transcript, so reading one is audited with who and why, and
purge deletes it with the transcript.
"""

from __future__ import annotations

import json

from appliance.store.base import StoreBase
from appliance.store.errors import SessionClosed
from appliance.store.models import Note
from appliance.store.states import State


class NotesMixin(StoreBase):
    def save_note(self, session_id: str, revision: int, template: str, text: str, *, actor: str = "sync") -> Note:
        """Store the clinic's note for one revision and template. Idempotent: a re-delivered note
        replaces the row for the same (session, revision, template) instead of adding one.
        Raises SessionNotFound for an unknown session and SessionClosed for a purged one (a late
        note must not bring content back after retention)."""
        template = template.strip()
        if not template:
            raise ValueError("note template name is empty")
        if int(revision) < 1:
            raise ValueError(f"note revision must be >= 1, got {revision}")
        with self._tx() as db:
            row = self._session_row(session_id)
            if row["state"] == State.PURGED:
                raise SessionClosed(f"session {session_id} was purged; note for revision {revision} dropped")
            if int(revision) > int(row["revision"]):
                raise ValueError(
                    f"note for session {session_id} revision {revision}, but the latest revision is {row['revision']}"
                )
            now = self._clock()
            db.execute(
                "INSERT INTO notes (session_id, revision, template, text, received_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (session_id, revision, template) DO UPDATE SET text = excluded.text, "
                "received_at = excluded.received_at",
                [session_id, int(revision), template, text, now],
            )
            self._audit(actor, "note:save", session_id, {"revision": int(revision), "template": template,
                                                         "chars": len(text)})
            return Note(session_id, int(revision), template, text, now)

    def read_notes(self, session_id: str, actor: str, reason: str) -> list[Note]:
        """Every note of a session, by revision then template. Audited like read_transcript."""
        if not actor or not reason:
            raise ValueError("reading notes needs an actor and a reason (it is audited)")
        with self._tx():
            self._session_row(session_id)
            rows = self._rows(
                "SELECT * FROM notes WHERE session_id = ? ORDER BY revision, template", [session_id]
            )
            self._audit(actor, "read:notes", session_id, {"reason": reason, "notes": len(rows)})
        return [Note.from_row(r) for r in rows]

    def note_count(self, session_id: str) -> int:
        """How many notes a session has, without reading (or auditing) any text."""
        with self._lock:
            self._session_row(session_id)
            return int(self._db.execute("SELECT COUNT(*) FROM notes WHERE session_id = ?", [session_id]).fetchone()[0])

    def note_status(self, session_id: str) -> dict[str, str]:
        """Where each requested note stands, per template of the session: "requested" (the sent
        revision is not delivered yet), "generating" (the clinic acknowledged it; no note back yet)
        or "ready" (a note for that revision is here). Empty until the visit is sent. Reads no
        note text, so it is not audited."""
        with self._lock:
            row = self._session_row(session_id)
            sent = self._rows("SELECT revision, acked_at FROM outbox WHERE session_id = ? AND superseded = 0 "
                              "ORDER BY id DESC LIMIT 1", [session_id])
            if not sent:
                return {}
            back = {r["template"]: r["revision"] for r in self._rows(
                "SELECT template, MAX(revision) AS revision FROM notes WHERE session_id = ? GROUP BY template",
                [session_id])}
        revision, acked = sent[0]["revision"], sent[0]["acked_at"] is not None
        return {t: "ready" if back.get(t, 0) >= revision else "generating" if acked else "requested"
                for t in json.loads(row["templates"])}
