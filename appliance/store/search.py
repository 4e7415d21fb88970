"""Search the transcripts and names of the visits on the device (History, PIN-gated on the panel).

A search reads transcript text, so it is audited like any read: one "search" event (the number of
hits and the query's length, never the query, which may name a patient or a condition) and a
"read" event for every visit whose matching line is shown.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.store.base import StoreBase
from appliance.store.models import Session
from appliance.store.states import State

_MATCHES = """
    SELECT s.session_id, s.text, s.start
    FROM segments AS s
    JOIN sessions AS se ON se.id = s.session_id
    WHERE se.state != :purged AND s.deleted = 0 AND s.text LIKE :pattern ESCAPE '\\'
      AND s.revision = (SELECT MAX(v.revision) FROM segments AS v WHERE v.id = s.id)
    ORDER BY s.session_id, s.start, s.seq
"""


@dataclass(frozen=True)
class SearchHit:
    session: Session
    line: str  # the first matching line of the transcript ("" when only the name matched)
    matches: int  # matching lines in the visit


def _like(query: str) -> str:
    return "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class SearchMixin(StoreBase):
    def search(self, query: str, actor: str, reason: str, *, limit: int = 50) -> list[SearchHit]:
        """Visits whose current transcript or name contains `query` (case-insensitive for
        ASCII), newest first, at most `limit`. Audited (see the module docstring)."""
        query = " ".join(query.split())
        if not query:
            raise ValueError("the search is empty")
        if not actor or not reason:
            raise ValueError("a search reads transcripts: it needs an actor and a reason (it is audited)")
        pattern = _like(query)
        with self._tx():
            lines: dict[str, list[str]] = {}
            for r in self._rows(_MATCHES, {"purged": State.PURGED.value, "pattern": pattern}):
                lines.setdefault(r["session_id"], []).append(r["text"])
            rows = self._rows(
                "SELECT * FROM sessions WHERE state != ? AND (name LIKE ? ESCAPE '\\' OR id IN "
                f"({', '.join('?' * len(lines)) or 'NULL'})) ORDER BY created_at DESC, id DESC LIMIT ?",
                [State.PURGED.value, pattern, *lines, int(limit)],
            )
            hits = [SearchHit(Session.from_row(r), lines.get(r["id"], [""])[0], len(lines.get(r["id"], [])))
                    for r in rows]
            self._audit(actor, "search", None, {"reason": reason, "hits": len(hits), "chars": len(query)})
            for hit in hits:
                if hit.matches:
                    self._audit(actor, "read", hit.session.id, {"reason": reason, "revision": hit.session.revision,
                                                                "segments": hit.matches})
        return hits
