"""Voice prints of the visit in progress: what the speaker labeller has learnt so far.

Kept so a visit resumed after a crash or power cut goes on with the same speaker labels (and
can still be re-clustered at Stop). A voice print is 256 floats per turn, never audio; the
rows exist only while the visit is open: Stop deletes them, and so does purge.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from appliance.store.base import StoreBase


@dataclass(frozen=True)
class VoicePrint:
    turn: int
    segment_id: str
    start: float
    end: float
    label: str
    vector: np.ndarray
    azimuth: float | None = None
    confidence: float | None = None


class VoicePrintsMixin(StoreBase):
    def save_voiceprints(self, session_id: str, prints: Iterable[VoicePrint]) -> int:
        """Insert or update (a turn grows when a false split heals) the given turns' prints."""
        rows = [[session_id, p.turn, p.segment_id, p.start, p.end, p.label,
                 np.asarray(p.vector, np.float32).tobytes(), p.azimuth, p.confidence] for p in prints]
        if not rows:
            return 0
        with self._tx() as db:
            self._session_row(session_id)
            db.conn.executemany(
                'INSERT INTO voiceprints (session_id, turn, segment_id, start, "end", label, vector, azimuth, '
                "confidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session_id, turn) DO UPDATE SET "
                'segment_id = excluded.segment_id, start = excluded.start, "end" = excluded."end", '
                "label = excluded.label, vector = excluded.vector, azimuth = excluded.azimuth, "
                "confidence = excluded.confidence",
                rows,
            )
        return len(rows)

    def load_voiceprints(self, session_id: str) -> list[VoicePrint]:
        """The session's prints in turn order (empty once the visit stopped)."""
        with self._lock:
            rows = self._rows("SELECT * FROM voiceprints WHERE session_id = ? ORDER BY turn", [session_id])
        return [VoicePrint(r["turn"], r["segment_id"], r["start"], r["end"], r["label"],
                           np.frombuffer(r["vector"], np.float32).copy(), r["azimuth"], r["confidence"])
                for r in rows]

    def delete_voiceprints(self, session_id: str) -> int:
        with self._tx() as db:
            return db.execute("DELETE FROM voiceprints WHERE session_id = ?", [session_id]).rowcount
