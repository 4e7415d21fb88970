"""Review edits beyond correcting one line: undo, split, join, add a line, "this speaker is me".

Like every edit (edits.py) each is one user action: the session revision is bumped once and the
touched segments get new versions at that revision, so nothing is overwritten. Undo does not
delete versions either: it writes the earlier content again at a new revision. Which edit Undo
takes back is read from the audit trail (each edit records the revision it made), following
earlier undos, so pressing Undo repeatedly walks back one edit at a time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from appliance.store.edits import _AS_OF, TranscriptMixin, _clean_label, _clean_text
from appliance.store.errors import SegmentNotFound
from appliance.store.ids import uuid7
from appliance.store.states import State

# Edits that change segments (speaker names and visit details are not versioned per revision).
UNDOABLE = frozenset({"edit:text", "edit:speaker", "edit:swap-speakers", "edit:delete", "edit:split",
                      "edit:merge", "edit:insert", "edit:confirm-speaker", "edit:refine"})
# A refined text replaces the live one only before the visit is sent (the clinic gets what was reviewed).
REFINABLE = frozenset({State.STOPPED, State.REVIEWED})
CLINICIAN, PATIENT = "Clinician", "Patient"


class ReviseMixin(TranscriptMixin):
    def undoable_edit(self, session_id: str) -> str | None:
        """The audit action Undo would take back (e.g. "edit:text"), or None."""
        with self._lock:
            row = self._session_row(session_id)
            step = self._undo_step(session_id, int(row["revision"]))
        return step[1] if step else None

    def undo_last_edit(self, session_id: str, actor: str) -> int:
        """Take back the latest edit not yet undone; returns the new revision.
        Raises ValueError if there is nothing to undo."""
        with self._tx():
            row = self._editable_row(session_id)
            current = int(row["revision"])
            step = self._undo_step(session_id, current)
            if step is None:
                raise ValueError("There is no change to undo.")
            target, undone = step
            touched = [r["id"] for r in self._rows(
                "SELECT DISTINCT id FROM segments WHERE session_id = ? AND revision > ?", [session_id, target])]
            rev = self._bump_revision(session_id)
            for segment_id in touched:
                self._restore(session_id, segment_id, target, rev)
            self._audit(actor, "edit:undo", session_id, {"restored": target, "undone": undone, "revision": rev})
            return rev

    def refine_transcript(self, session_id: str, texts: Mapping[str, str], live: Mapping[str, str],
                          actor: str = "refiner") -> tuple[int, int] | None:
        """The refined pass's texts as one new revision (Undo takes it back): ``texts`` maps a line to
        its refined text, ``live`` to the live text it replaces. A line a person changed meanwhile
        keeps their words; nothing happens once the visit is sent. Returns (revision, lines changed),
        or None when nothing changed."""
        with self._tx():
            row = self._editable_row(session_id)
            if row["state"] not in REFINABLE:
                return None
            todo = []
            for segment_id, text in texts.items():
                try:
                    current = self._current_version(session_id, segment_id)
                except SegmentNotFound:  # deleted on Review meanwhile
                    continue
                if current["text"] == live.get(segment_id, "").strip() and text.strip():
                    todo.append((current, _clean_text(text)))
            if not todo:
                return None
            rev = self._bump_revision(session_id)
            for current, text in todo:
                self._write_version(current, rev, text=text, edited=0)  # not a person's edit
            self._audit(actor, "edit:refine", session_id, {"revision": rev, "segments": len(todo)})
            return rev, len(todo)

    def split_segment(self, session_id: str, segment_id: str, at_word: int, actor: str) -> tuple[int, str]:
        """Cut a line before word `at_word` (0-based; 1 … words-1); the second part becomes a new
        line of the same speaker. Times are shared in proportion to the characters. Returns
        (revision, new segment id)."""
        with self._tx():
            self._editable_row(session_id)
            cur = self._current_version(session_id, segment_id)
            words = cur["text"].split()
            if not 0 < at_word < len(words):
                raise ValueError(f"a line of {len(words)} words cannot be split before word {at_word + 1}")
            first, second = " ".join(words[:at_word]), " ".join(words[at_word:])
            cut = cur["start"] + (cur["end"] - cur["start"]) * len(first) / (len(first) + len(second) + 1)
            rev = self._bump_revision(session_id)
            self._write_version(cur, rev, text=first, end=cut)
            new_id = self._new_segment(session_id, rev, cut, cur["end"], cur["speaker"], second)
            self._audit(actor, "edit:split", session_id, {"segment": segment_id, "new": new_id, "revision": rev})
            return rev, new_id

    def merge_with_next(self, session_id: str, segment_id: str, actor: str) -> int:
        """Join a line with the one after it (keeping this line's speaker); returns the revision."""
        with self._tx():
            row = self._editable_row(session_id)
            lines = self._rows(_AS_OF.format(extra="AND s.deleted = 0"), {"sid": session_id, "rev": row["revision"]})
            index = next((i for i, r in enumerate(lines) if r["id"] == segment_id), None)
            if index is None:
                raise SegmentNotFound(session_id, segment_id)
            if index + 1 >= len(lines):
                raise ValueError("This is the last line: there is no line after it to join.")
            a, b = lines[index], lines[index + 1]
            rev = self._bump_revision(session_id)
            self._write_version(a, rev, text=f"{a['text']} {b['text']}".strip(), end=max(a["end"], b["end"]))
            self._write_version(b, rev, deleted=1)
            self._audit(actor, "edit:merge", session_id, {"segment": segment_id, "joined": b["id"], "revision": rev})
            return rev

    def insert_segment(self, session_id: str, after_segment_id: str, speaker: str, text: str,
                       actor: str) -> tuple[int, str]:
        """Add a sentence the recogniser missed, right after a line; returns (revision, new id)."""
        text, speaker = _clean_text(text), _clean_label(speaker)
        with self._tx():
            self._editable_row(session_id)
            after = self._current_version(session_id, after_segment_id)
            rev = self._bump_revision(session_id)
            new_id = self._new_segment(session_id, rev, after["end"], after["end"], speaker, text)
            self._ensure_speaker(session_id, speaker)
            self._audit(actor, "edit:insert", session_id, {"after": after_segment_id, "new": new_id,
                                                           "revision": rev})
            return rev, new_id

    def speaker_is_me(self, session_id: str, label: str, actor: str) -> int:
        """"This speaker is me" (no enrolment needed): `label` is named Clinician and every other
        speaker of the transcript Patient, as one revision. Returns the revision."""
        label = _clean_label(label)
        with self._tx() as db:
            row = self._editable_row(session_id)
            used = {r["speaker"] for r in self._rows(_AS_OF.format(extra="AND s.deleted = 0"),
                                                     {"sid": session_id, "rev": row["revision"]})}
            if label not in used:
                raise ValueError(f"speaker {label} has no line in this visit")
            for each in sorted(used):
                db.execute(
                    "INSERT INTO speakers (session_id, label, name) VALUES (?, ?, ?) "
                    "ON CONFLICT (session_id, label) DO UPDATE SET name = excluded.name",
                    [session_id, each, CLINICIAN if each == label else PATIENT],
                )
            rev = self._bump_revision(session_id)
            self._audit(actor, "edit:speaker-is-me", session_id, {"label": label, "revision": rev})
            return rev

    # -- helpers (inside a transaction) ----------------------------------------------------------

    def _undo_step(self, session_id: str, revision: int) -> tuple[int, str] | None:
        """(revision to restore, action undone) for the latest edit not undone at `revision`."""
        made_by: dict[int, dict[str, Any]] = {}
        for ev in self._rows("SELECT action, detail FROM audit WHERE session_id = ? AND "
                             "(action LIKE 'edit:%' OR action LIKE 'set:%') ORDER BY id", [session_id]):
            detail = _json(ev["detail"])
            if isinstance(detail.get("revision"), int):
                made_by[detail["revision"]] = {"action": ev["action"], **detail}
        r = revision
        while r > 1:
            made = made_by.get(r)
            if made is not None and made["action"] == "edit:undo":
                r = int(made["restored"])  # that revision's transcript is the one shown now
            elif made is not None and made["action"] in UNDOABLE:
                return r - 1, made["action"]
            else:
                r -= 1  # a change of visit details, names or a recognised line: nothing to take back
        return None

    def _restore(self, session_id: str, segment_id: str, target: int, revision: int) -> None:
        versions = self._rows("SELECT * FROM segments WHERE id = ? AND session_id = ? ORDER BY revision",
                              [segment_id, session_id])
        current = versions[-1]
        before = [v for v in versions if v["revision"] <= target]
        if before:
            old = before[-1]
            fields = ("start", "end", "speaker", "text", "deleted", "edited", "confidence", "word_confidence",
                      "speaker_uncertain")
            if any(old[k] != current[k] for k in fields):
                self._write_version(current, revision, **{k: old[k] for k in fields})
        elif versions[0]["edited"] and not current["deleted"]:
            self._write_version(current, revision, deleted=1)  # a line the undone edit created
        # else: a line the recogniser added after that revision (the utterance in flight at Stop)

    def _new_segment(self, session_id: str, revision: int, start: float, end: float, speaker: str,
                     text: str) -> str:
        now = self._clock()
        seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM segments WHERE session_id = ?",
                               [session_id]).fetchone()[0]
        segment_id = uuid7(int(now * 1000))
        self._db.table("segments").insert({
            "id": segment_id, "session_id": session_id, "seq": seq, "start": float(start), "end": float(end),
            "speaker": speaker, "text": text, "revision": revision, "deleted": 0, "created_at": now, "edited": 1,
        })
        return segment_id


def _json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
