"""The durable outbox: which session revisions still have to reach the clinic.

Only the bookkeeping lives here; the sync component decides when to try and what a retry costs.
"""

from __future__ import annotations

from typing import Any

from appliance.store.base import StoreBase
from appliance.store.errors import OutboxItemNotFound
from appliance.store.models import OutboxItem
from appliance.store.states import State, check_transition

_PENDING = "acked_at IS NULL AND superseded = 0"


class OutboxMixin(StoreBase):
    def enqueue(self, session_id: str, actor: str) -> OutboxItem:
        """Send the session's current revision: state → queued and an outbox row, atomically, so
        a crash can never leave a 'queued' session with nothing to deliver. Older pending
        revisions of the session are superseded; sending the same revision twice is a no-op."""
        with self._tx():
            row = self._session_row(session_id)
            return self._enqueue_locked(row, actor)

    def _enqueue_locked(self, row: dict[str, Any], actor: str) -> OutboxItem:
        session_id, revision = row["id"], row["revision"]
        check_transition(session_id, row["state"], State.QUEUED)  # fail before touching the outbox
        now = self._clock()
        pending = self._rows(
            f"SELECT * FROM outbox WHERE session_id = ? AND {_PENDING} ORDER BY id", [session_id]
        )
        current = next((p for p in pending if p["revision"] == revision), None)
        self._db.execute(
            f"UPDATE outbox SET superseded = 1 WHERE session_id = ? AND {_PENDING} AND revision <> ?",
            [session_id, revision],
        )
        if current is None:
            table = self._db.table("outbox")
            table.insert(
                {
                    "session_id": session_id,
                    "revision": revision,
                    "created_at": now,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "acked_at": None,
                    "superseded": 0,
                }
            )
            current = table.get(table.last_pk)
        self._apply_transition(row, State.QUEUED, actor, revision=revision, outbox=current["id"])
        return OutboxItem.from_row(current)

    def next_due(self, now: float | None = None, limit: int = 10) -> list[OutboxItem]:
        """Pending deliveries whose next attempt is due, oldest first."""
        when = self._clock() if now is None else now
        rows = self._rows(
            f"SELECT * FROM outbox WHERE {_PENDING} AND next_attempt_at <= ? "
            "ORDER BY next_attempt_at, id LIMIT ?",
            [when, limit],
        )
        return [OutboxItem.from_row(r) for r in rows]

    def pending_count(self) -> int:
        """Deliveries still waiting for the clinic's ack (for the status display)."""
        with self._lock:
            return int(self._db.execute(f"SELECT COUNT(*) FROM outbox WHERE {_PENDING}").fetchone()[0])

    def unacked_for(self, session_id: str, revision: int) -> list[OutboxItem]:
        """Rows an ack for (session, revision) settles: not yet acked, superseded or not."""
        rows = self._rows(
            "SELECT * FROM outbox WHERE session_id = ? AND revision = ? AND acked_at IS NULL ORDER BY id",
            [session_id, revision],
        )
        return [OutboxItem.from_row(r) for r in rows]

    def clamp_schedule(self, now: float, horizon: float) -> int:
        """Make due now every pending row scheduled later than now + horizon: the wall clock went
        back, and a retry must not wait for it to catch up. Returns how many were moved."""
        where = f"{_PENDING} AND next_attempt_at > ?"
        if not self._rows(f"SELECT id FROM outbox WHERE {where} LIMIT 1", [now + horizon]):
            return 0  # the usual case, without taking the write lock
        with self._tx():
            return self._db.execute(
                f"UPDATE outbox SET next_attempt_at = ? WHERE {where}", [now, now + horizon]
            ).rowcount

    def outbox_items(self, session_id: str) -> list[OutboxItem]:
        """Every outbox row of a session, oldest first (for status display)."""
        with self._lock:
            self._session_row(session_id)
            rows = self._rows("SELECT * FROM outbox WHERE session_id = ? ORDER BY id", [session_id])
        return [OutboxItem.from_row(r) for r in rows]

    def _outbox_row(self, outbox_id: int) -> dict[str, Any]:
        rows = self._rows("SELECT * FROM outbox WHERE id = ?", [outbox_id])
        if not rows:
            raise OutboxItemNotFound(outbox_id)
        return rows[0]

    def mark_attempt(self, outbox_id: int, next_attempt_at: float) -> OutboxItem:
        """Record a failed delivery attempt and when to try again."""
        with self._tx():
            self._outbox_row(outbox_id)
            self._db.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ? WHERE id = ?",
                [next_attempt_at, outbox_id],
            )
            return OutboxItem.from_row(self._outbox_row(outbox_id))

    def mark_acked(self, outbox_id: int, actor: str = "sync") -> OutboxItem:
        """The clinic has stored this revision. A queued session with nothing else pending becomes
        synced (if it was edited since, it is then 'synced with local edits', which the clinician
        can send again). Idempotent: a repeated ack changes nothing."""
        with self._tx():
            item = self._outbox_row(outbox_id)
            if item["acked_at"] is not None:
                return OutboxItem.from_row(item)
            session_id = item["session_id"]
            self._db.execute("UPDATE outbox SET acked_at = ? WHERE id = ?", [self._clock(), outbox_id])
            session = self._session_row(session_id)
            still_pending = self._rows(
                f"SELECT id FROM outbox WHERE session_id = ? AND {_PENDING} LIMIT 1", [session_id]
            )
            if session["state"] == State.QUEUED and not still_pending:
                self._apply_transition(
                    session, State.SYNCED, actor, revision=item["revision"], outbox=outbox_id
                )
            return OutboxItem.from_row(self._outbox_row(outbox_id))
