"""Opening the database file safely, and the plumbing shared by the store's parts.

One sqlite3 connection per SessionStore, guarded by a re-entrant lock: the daemon's few threads
(pipeline, panel, sync) serialise on it, which is plenty for a handful of writes per second.
Other processes (a CLI) open their own store; WAL lets them read while the daemon writes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlite_utils import Database
from sqlite_utils.db import NotFoundError

from appliance.store.errors import SessionNotFound, StoreError
from appliance.store.states import State, check_transition
from common.privatedb import WalUnavailable, connect_private

# Keys that would carry transcript text or patient identity; the audit trail must not hold them.
_FORBIDDEN_DETAIL = frozenset({"text", "name", "clinician", "speaker_name"})


def connect(path: str, *, busy_timeout: float = 5.0) -> Database:
    """Open (creating if needed) the database with the durability and privacy settings the clinic's
    store uses too (common.privatedb.connect_private)."""
    try:
        conn = connect_private(path, busy_timeout=busy_timeout)
    except WalUnavailable as exc:
        raise StoreError(str(exc)) from None
    # Plugins could hook the connection; a medical store should not pick them up implicitly.
    return Database(conn, execute_plugins=False)


class StoreBase:
    """Connection, lock, transactions and the helpers every part of the store needs."""

    def __init__(self, db: Database, path: str, clock: Callable[[], float]) -> None:
        self._db = db
        self.path = path
        self._clock = clock
        self._lock = threading.RLock()
        self.scrub_pending = False  # a purge's checkpoint was held back by a reader (store.scrub())

    @contextmanager
    def _tx(self) -> Iterator[Database]:
        """One write transaction, taken IMMEDIATE so it never has to upgrade a read lock (which
        fails with SQLITE_BUSY instead of waiting when another process wrote in between).
        Re-entrant: a nested call joins the caller's transaction."""
        with self._lock:
            if self._db.conn.in_transaction:
                yield self._db
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.rollback()
                raise
            try:
                self._db.commit()
            except BaseException:
                self._db.rollback()
                raise

    def _rows(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._db.query(sql, params))

    def _session_row(self, session_id: str) -> dict[str, Any]:
        try:
            return self._db.table("sessions").get(session_id)
        except NotFoundError:
            raise SessionNotFound(session_id) from None

    def _update_session(self, session_id: str, **fields: Any) -> None:
        fields["updated_at"] = self._clock()
        self._db.table("sessions").update(session_id, fields)

    def _bump_revision(self, session_id: str) -> int:
        """One user action = one new session revision; returns it."""
        row = self._db.execute(
            "UPDATE sessions SET revision = revision + 1, updated_at = ? WHERE id = ? RETURNING revision",
            [self._clock(), session_id],
        ).fetchone()
        return int(row[0])

    def _audit(self, actor: str, action: str, session_id: str | None, detail: dict[str, Any]) -> None:
        if not actor or not action:
            raise ValueError("audit events need an actor and an action")
        leaked = _FORBIDDEN_DETAIL & detail.keys()
        if leaked:
            raise ValueError(f"audit detail must not carry transcript or identity fields: {sorted(leaked)}")
        self._db.table("audit").insert(
            {
                "ts": self._clock(),
                "actor": actor,
                "action": action,
                "session_id": session_id,
                "detail": json.dumps(detail, sort_keys=True),
            }
        )

    def _apply_transition(self, row: dict[str, Any], target: State, actor: str, **detail: Any) -> State:
        """Move a session (already read inside the caller's transaction) to `target`, or raise
        IllegalTransition; stamps the matching timestamp and writes the audit event."""
        old = State(row["state"])
        check_transition(row["id"], old, target)
        now = self._clock()
        fields: dict[str, Any] = {"state": target.value}
        if target is State.RECORDING and row["started_at"] is None:
            fields["started_at"] = now
        elif target is State.STOPPED:
            fields["ended_at"] = now
        elif target is State.SYNCED:
            fields["synced_at"] = now
        elif target is State.PURGED:
            fields["purged_at"] = now
        self._update_session(row["id"], **fields)
        self._audit(actor, f"state:{old}->{target}", row["id"], detail)
        row.update(fields)
        return old
