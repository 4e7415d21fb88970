"""The durable outbox: which session revisions still have to reach the clinic.

Only the bookkeeping lives here; the sync component decides when to try and what a retry costs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from appliance.store.base import StoreBase
from appliance.store.edits import _AS_OF
from appliance.store.errors import OutboxItemNotFound, SessionClosed, SessionNotFound
from appliance.store.models import OutboxItem, Session
from appliance.store.states import State, check_transition

_PENDING = "acked_at IS NULL AND superseded = 0"
_LIVE_AS_OF = _AS_OF.format(extra="AND s.deleted = 0")  # the query read_transcript runs
# (id, start, end, speaker, text, speaker display name) of one segment, as read for delivery.
DeliveryRow = tuple[str, float, float, str, str, str]


class OutboxMixin(StoreBase):
    def enqueue(self, session_id: str, actor: str) -> OutboxItem:
        """Send the session's current revision: state → queued and an outbox row, atomically, so
        a crash can never leave a 'queued' session with nothing to deliver. Older pending
        revisions of the session are superseded; sending the same revision twice is a no-op."""
        with self._tx():
            row = self._session_row(session_id)
            return self._enqueue_locked(row, actor)

    def _bump_revision(self, session_id: str) -> int:
        """Every edit (text, speakers, metadata) bumps the revision through here. A visit already
        handed to the sync (queued or synced) has its new revision queued in the same transaction:
        otherwise the correction would never be sent, and retention, counting from the old ack,
        would purge it with the clinic holding only the uncorrected text."""
        revision = super()._bump_revision(session_id)
        row = self._session_row(session_id)
        if row["state"] in (State.QUEUED, State.SYNCED):
            self._enqueue_locked(row, "edit")
        return revision

    def requeue_unsent_edits(self, actor: str) -> list[str]:
        """Queue the current revision of synced visits whose latest revision the clinic never
        acknowledged (edited after sending by a version that did not queue edits). Returns them."""
        with self._tx():
            rows = self._rows(
                "SELECT * FROM sessions AS s WHERE state = ? AND NOT EXISTS (SELECT 1 FROM outbox AS o "
                "WHERE o.session_id = s.id AND o.revision = s.revision AND o.acked_at IS NOT NULL)",
                [State.SYNCED.value])
            for row in rows:
                self._enqueue_locked(row, actor)
        return [r["id"] for r in rows]

    def readdress_pending(self, device_id: str, site: str, actor: str) -> int:
        """Sessions still waiting for delivery that were recorded under another device id or site
        (the config was wrong, then corrected) take the current ones: the broker accepts this
        device's messages only under the id and site of its certificate, and the clinic only a
        payload that matches its topic. Returns how many changed."""
        where = f"(device_id <> :dev OR site <> :site) AND id IN (SELECT session_id FROM outbox WHERE {_PENDING})"
        with self._tx() as db:
            rows = self._rows(f"SELECT id, device_id, site FROM sessions WHERE {where}",
                              {"dev": device_id, "site": site})
            for row in rows:
                db.execute("UPDATE sessions SET device_id = ?, site = ?, updated_at = ? WHERE id = ?",
                           [device_id, site, self._clock(), row["id"]])
                self._audit(actor, "readdress", row["id"], {"from": f"{row['site']}/{row['device_id']}",
                                                             "to": f"{site}/{device_id}"})
        return len(rows)

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
            assert table.last_pk is not None  # set by the insert just made
            current = table.get(table.last_pk)
        self._apply_transition(row, State.QUEUED, actor, revision=revision, outbox=current["id"])
        return OutboxItem.from_row(current)

    def read_for_delivery(
        self, wanted: Sequence[tuple[str, int]], actor: str, reason: str
    ) -> list[tuple[Session, list[DeliveryRow]] | Exception]:
        """read_transcript() for many (session, revision) pairs in one transaction: the same query
        and checks, and the same audit event per session read, written together. Returns per pair
        the session and its rows, or the error read_transcript would raise (SessionNotFound,
        SessionClosed, ValueError) so one bad pair does not fail the others. Rows are plain
        tuples: building Segment objects cost the sync as much as the query did."""
        if not actor or not reason:
            raise ValueError("reading a transcript needs an actor and a reason (it is audited)")
        out: list[tuple[Session, list[DeliveryRow]] | Exception] = []
        audits: list[tuple[float, str, str, str, str]] = []
        with self._tx() as db:
            conn = db.conn
            ids = sorted({sid for sid, _ in wanted})
            cur = conn.execute(f"SELECT * FROM sessions WHERE id IN ({','.join('?' * len(ids))})", ids)
            names = [d[0] for d in cur.description]
            sessions = {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}
            now = self._clock()
            for sid, rev in wanted:
                row = sessions.get(sid)
                if row is None:
                    out.append(SessionNotFound(sid))
                    continue
                if row["state"] == State.PURGED:
                    out.append(SessionClosed(f"session {sid} was purged; its transcript is gone"))
                    continue
                if not 1 <= rev <= row["revision"]:
                    out.append(ValueError(f"session {sid} has no revision {rev} (latest is {row['revision']})"))
                    continue
                cur = conn.execute(_LIVE_AS_OF, {"sid": sid, "rev": rev})
                col = {d[0]: i for i, d in enumerate(cur.description)}
                i_id, i_start, i_end, i_spk, i_text, i_name = (
                    col["id"], col["start"], col["end"], col["speaker"], col["text"], col["speaker_name"])
                rows = [(r[i_id], r[i_start], r[i_end], r[i_spk], r[i_text], r[i_name] or r[i_spk])
                        for r in cur.fetchall()]
                out.append((Session.from_row(row), rows))
                detail = {"reason": reason, "revision": rev, "segments": len(rows)}
                audits.append((now, actor, "read", sid, json.dumps(detail, sort_keys=True)))
            # Same rows StoreBase._audit writes (its detail keys are fixed here, none forbidden).
            conn.executemany("INSERT INTO audit (ts, actor, action, session_id, detail) VALUES (?, ?, ?, ?, ?)",
                             audits)
        return out

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

    def retry_now(self, session_id: str, now: float | None = None) -> list[int]:
        """Make the session's pending deliveries due at once (the clinic asked for it again while
        the device was waiting out a backoff). Returns their outbox ids."""
        when = self._clock() if now is None else now
        with self._tx() as db:
            self._session_row(session_id)
            rows = db.conn.execute(
                f"UPDATE outbox SET next_attempt_at = ? WHERE session_id = ? AND {_PENDING} RETURNING id",
                [when, session_id],
            ).fetchall()
        return sorted(r[0] for r in rows)

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

    def mark_attempts(self, schedule: list[tuple[int, float]]) -> None:
        """mark_attempt() for many rows at once: (outbox id, next attempt time) pairs, one statement.
        Rows that no longer exist (purged meanwhile) are skipped."""
        with self._tx() as db:
            db.conn.executemany("UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ? WHERE id = ?",
                                [(when, oid) for oid, when in schedule])

    def mark_acked(self, outbox_id: int, actor: str = "sync") -> OutboxItem:
        """The clinic has stored this revision. A queued session with nothing else pending becomes
        synced (an edit since queued its new revision, which keeps it queued). Idempotent: a
        repeated ack changes nothing."""
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

    def mark_acked_many(self, acks: Sequence[tuple[str, int]], actor: str = "sync") -> list[int]:
        """mark_acked() for every unacked row of each acknowledged (session, revision), in one
        transaction with plain statements (the sync applies a whole round of acks at once).
        Same effects and audit events as mark_acked; returns the outbox ids settled now."""
        settled: list[int] = []
        audits: list[tuple[float, str, str, str, str]] = []
        action = f"state:{State.QUEUED}->{State.SYNCED}"
        with self._tx() as db:
            conn = db.conn
            now = self._clock()
            for sid, rev in acks:
                ids = [r[0] for r in conn.execute(
                    "UPDATE outbox SET acked_at = ? WHERE session_id = ? AND revision = ? AND acked_at IS NULL "
                    "RETURNING id", [now, sid, rev]).fetchall()]
                if not ids:
                    continue  # a repeated ack, or the session was purged meanwhile
                settled += ids
                state = conn.execute("SELECT state FROM sessions WHERE id = ?", [sid]).fetchone()
                pending = conn.execute(f"SELECT 1 FROM outbox WHERE session_id = ? AND {_PENDING} LIMIT 1", [sid])
                if state is None or state[0] != State.QUEUED or pending.fetchone() is not None:
                    continue
                check_transition(sid, State.QUEUED, State.SYNCED)
                conn.execute("UPDATE sessions SET state = ?, synced_at = ?, updated_at = ? WHERE id = ?",
                             [State.SYNCED.value, now, now, sid])
                detail = {"revision": rev, "outbox": max(ids)}
                audits.append((now, actor, action, sid, json.dumps(detail, sort_keys=True)))
            conn.executemany("INSERT INTO audit (ts, actor, action, session_id, detail) VALUES (?, ?, ?, ?, ?)",
                             audits)
        return settled
