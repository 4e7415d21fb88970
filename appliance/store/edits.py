"""Transcript segments: appending during a visit, audited reads, and versioned review edits.

An edit never overwrites: it bumps the session revision once per user action and writes a new
version of each touched segment at that revision. The transcript "as of revision r" is the
latest version of each segment id with revision <= r that is not deleted, ordered by start.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from appliance.store.base import StoreBase
from appliance.store.errors import SegmentNotFound, SessionClosed
from appliance.store.ids import uuid7
from appliance.store.models import Segment
from appliance.store.states import State

# The utterance in flight when Pause or Stop is pressed is still transcribed and stored after.
_APPEND_STATES = frozenset({State.RECORDING, State.PAUSED, State.STOPPED})

_AS_OF = """
    SELECT s.*, sp.name AS speaker_name
    FROM segments AS s
    LEFT JOIN speakers AS sp ON sp.session_id = s.session_id AND sp.label = s.speaker
    WHERE s.session_id = :sid
      AND s.revision = (SELECT MAX(v.revision) FROM segments AS v WHERE v.id = s.id AND v.revision <= :rev)
      {extra}
    ORDER BY s.start, s.seq
"""


def default_speaker_name(label: str) -> str:
    """'S2' → 'Speaker 2'; other labels are shown as they are."""
    match = re.fullmatch(r"S(\d+)", label)
    return f"Speaker {int(match.group(1))}" if match else label


def _clean_text(text: str) -> str:
    text = text.strip()
    if not text:
        raise ValueError("segment text is empty (store no empty segments; delete_segment removes one)")
    return text


def _clean_label(label: str) -> str:
    label = label.strip()
    if not label:
        raise ValueError("speaker label is empty")
    return label


class TranscriptMixin(StoreBase):
    def add_segment(self, session_id: str, start: float, end: float, speaker: str, text: str,
                    confidence: float | None = None, word_confidence: Sequence[float] | None = None,
                    speaker_uncertain: bool = False) -> str:
        """Append an utterance; committed (fsynced) when this returns. Returns the segment id.

        Empty text is allowed here (recognition failed or no recognizer: the timing is kept
        so the clinician sees a gap to fill); an empty speaker means "not yet assigned".
        Edits, unlike appends, may not empty a segment: delete_segment removes one.
        """
        text, speaker = text.strip(), speaker.strip()
        if not 0 <= start <= end:
            raise ValueError(f"bad segment times: start={start} end={end}")
        if confidence is not None and not 0.0 <= confidence <= 1.0:  # NaN fails this too
            raise ValueError(f"segment confidence must be between 0 and 1: {confidence}")
        if word_confidence is not None:
            word_confidence = [float(c) for c in word_confidence]
            if len(word_confidence) != len(text.split()) or not all(0.0 <= c <= 1.0 for c in word_confidence):
                raise ValueError(f"word confidences must be one 0–1 number per word of the text "
                                 f"({len(text.split())} words, {len(word_confidence)} numbers)")
        with self._tx() as db:
            row = self._session_row(session_id)
            if row["state"] not in _APPEND_STATES:
                raise SessionClosed(f"cannot add a segment to session {session_id}: it is '{row['state']}'")
            seq = db.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM segments WHERE session_id = ?", [session_id]
            ).fetchone()[0]
            now = self._clock()
            segment_id = uuid7(int(now * 1000))
            db.table("segments").insert(
                {
                    "id": segment_id,
                    "session_id": session_id,
                    "seq": seq,
                    "start": float(start),
                    "end": float(end),
                    "speaker": speaker,
                    "text": text,
                    "revision": row["revision"],
                    "deleted": 0,
                    "created_at": now,
                    "confidence": confidence,
                    "word_confidence": json.dumps(word_confidence) if word_confidence is not None else None,
                    "speaker_uncertain": int(bool(speaker_uncertain and speaker)),
                }
            )
            if speaker:
                self._ensure_speaker(session_id, speaker)
            self._update_session(session_id)
        return segment_id

    def segment_count(self, session_id: str) -> int:
        """Number of live segments, without reading (or auditing) any text: 0 means no speech."""
        with self._lock:
            self._session_row(session_id)
            return int(self._db.execute(
                "SELECT COUNT(*) FROM segments AS s WHERE s.session_id = ? AND s.deleted = 0 "
                "AND s.revision = (SELECT MAX(v.revision) FROM segments AS v WHERE v.id = s.id)",
                [session_id],
            ).fetchone()[0])

    def read_transcript(
        self, session_id: str, actor: str, reason: str, *, revision: int | None = None
    ) -> list[Segment]:
        """The transcript (current, or as of `revision`, e.g. the one the outbox is delivering).
        The only way to read transcript text, and every call is audited with who read it and why.
        Speaker display names are the current ones (names are not versioned)."""
        if not actor or not reason:
            raise ValueError("reading a transcript needs an actor and a reason (it is audited)")
        with self._tx():
            row = self._session_row(session_id)
            self._check_not_purged(row)
            rev = row["revision"] if revision is None else revision
            if not 1 <= rev <= row["revision"]:
                raise ValueError(f"session {session_id} has no revision {rev} (latest is {row['revision']})")
            rows = self._rows(_AS_OF.format(extra="AND s.deleted = 0"), {"sid": session_id, "rev": rev})
            self._audit(actor, "read", session_id, {"reason": reason, "revision": rev, "segments": len(rows)})
        return [Segment.from_row(r) for r in rows]

    def speakers(self, session_id: str) -> dict[str, str]:
        """Speaker labels of a session and their display names, e.g. {"S1": "Clinician"}."""
        with self._lock:
            self._session_row(session_id)
            rows = self._rows(
                "SELECT label, name FROM speakers WHERE session_id = ? ORDER BY label", [session_id]
            )
        return {r["label"]: r["name"] for r in rows}

    def set_speaker_name(self, session_id: str, label: str, name: str, actor: str) -> int:
        """Name a speaker label ("S1" → "Clinician"); returns the session revision."""
        label, name = _clean_label(label), name.strip()
        if not name:
            raise ValueError("speaker name is empty")
        with self._tx() as db:
            row = self._editable_row(session_id)
            current = self.speakers(session_id).get(label)
            if current == name:
                return int(row["revision"])
            db.execute(
                "INSERT INTO speakers (session_id, label, name) VALUES (?, ?, ?) "
                "ON CONFLICT (session_id, label) DO UPDATE SET name = excluded.name",
                [session_id, label, name],
            )
            rev = self._bump_revision(session_id)
            self._audit(actor, "edit:speaker-name", session_id, {"label": label, "revision": rev})
            return rev

    def edit_segment_text(self, session_id: str, segment_id: str, text: str, actor: str) -> int:
        """Correct the words of one segment; returns the new session revision."""
        text = _clean_text(text)
        with self._tx():
            row = self._editable_row(session_id)
            current = self._current_version(session_id, segment_id)
            if current["text"] == text:
                return int(row["revision"])
            rev = self._bump_revision(session_id)
            self._write_version(current, rev, text=text)
            self._audit(actor, "edit:text", session_id, {"segment": segment_id, "revision": rev})
            return rev

    def set_segment_speaker(self, session_id: str, segment_id: str, speaker: str, actor: str) -> int:
        """Re-assign one segment to another speaker label; returns the new session revision."""
        speaker = _clean_label(speaker)
        with self._tx():
            row = self._editable_row(session_id)
            current = self._current_version(session_id, segment_id)
            if current["speaker"] == speaker:
                return int(row["revision"])
            rev = self._bump_revision(session_id)
            self._write_version(current, rev, speaker=speaker)
            self._ensure_speaker(session_id, speaker)
            self._audit(
                actor, "edit:speaker", session_id,
                {"segment": segment_id, "from": current["speaker"], "to": speaker, "revision": rev},
            )
            return rev

    def confirm_speaker(self, session_id: str, segment_id: str, actor: str) -> int:
        """A person says the labeller's unsure speaker is right; returns the session revision."""
        with self._tx():
            row = self._editable_row(session_id)
            current = self._current_version(session_id, segment_id)
            if not current.get("speaker_uncertain"):
                return int(row["revision"])
            rev = self._bump_revision(session_id)
            self._write_version(current, rev, speaker_uncertain=0)
            self._audit(actor, "edit:confirm-speaker", session_id,
                        {"segment": segment_id, "speaker": current["speaker"], "revision": rev})
            return rev

    def swap_speakers(self, session_id: str, label_a: str, label_b: str, actor: str) -> int:
        """Swap two speaker labels across the whole transcript (diarization mixed them up), as one
        revision. Returns the session revision (unchanged if neither label has segments)."""
        label_a, label_b = _clean_label(label_a), _clean_label(label_b)
        if label_a == label_b:
            raise ValueError(f"cannot swap speaker {label_a} with itself")
        with self._tx():
            row = self._editable_row(session_id)
            rows = self._rows(
                _AS_OF.format(extra="AND s.deleted = 0 AND s.speaker IN (:a, :b)"),
                {"sid": session_id, "rev": row["revision"], "a": label_a, "b": label_b},
            )
            if not rows:
                return int(row["revision"])
            rev = self._bump_revision(session_id)
            for seg in rows:
                self._write_version(seg, rev, speaker=label_b if seg["speaker"] == label_a else label_a)
            for label in (label_a, label_b):
                self._ensure_speaker(session_id, label)
            self._audit(
                actor, "edit:swap-speakers", session_id,
                {"a": label_a, "b": label_b, "segments": len(rows), "revision": rev},
            )
            return rev

    def delete_segment(self, session_id: str, segment_id: str, actor: str) -> int:
        """Remove a passage from the transcript (earlier revisions keep it until purge)."""
        with self._tx():
            self._editable_row(session_id)
            current = self._current_version(session_id, segment_id)
            rev = self._bump_revision(session_id)
            self._write_version(current, rev, deleted=1)
            self._audit(actor, "edit:delete", session_id, {"segment": segment_id, "revision": rev})
            return rev

    # -- helpers (called inside a transaction) --------------------------------------------------

    def _check_not_purged(self, row: dict[str, Any]) -> None:
        if row["state"] == State.PURGED:
            raise SessionClosed(f"session {row['id']} was purged; its transcript is gone")

    def _editable_row(self, session_id: str) -> dict[str, Any]:
        row = self._session_row(session_id)
        self._check_not_purged(row)
        return row

    def _current_version(self, session_id: str, segment_id: str) -> dict[str, Any]:
        rows = self._rows(
            "SELECT * FROM segments WHERE id = ? AND session_id = ? ORDER BY revision DESC LIMIT 1",
            [segment_id, session_id],
        )
        if not rows or rows[0]["deleted"]:
            raise SegmentNotFound(session_id, segment_id)
        return rows[0]

    def _write_version(self, current: dict[str, Any], revision: int, **changes: Any) -> None:
        version = {k: current[k] for k in (
            "id", "session_id", "seq", "start", "end", "speaker", "text", "revision", "deleted", "created_at"
        )}
        # The recogniser's confidence is about the words: it goes once a person rewrites them.
        same_words = changes.get("text", current["text"]) == current["text"]
        kept = {k: current.get(k) if same_words else None for k in ("confidence", "word_confidence")}
        # Whoever gives the line a speaker (a person, or the hindsight pass at Stop) has decided.
        kept["speaker_uncertain"] = 0 if "speaker" in changes else current.get("speaker_uncertain", 0)
        version.update({"edited": 1, **kept, **changes}, revision=revision, created_at=self._clock())
        self._db.table("segments").insert(version)

    def _ensure_speaker(self, session_id: str, label: str) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO speakers (session_id, label, name) VALUES (?, ?, ?)",
            [session_id, label, default_speaker_name(label)],
        )
