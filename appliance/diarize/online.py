"""Online diarization: a speaker label for each utterance as it is transcribed, fixed up at Stop.

Each utterance's voice print is compared with every speaker's running-mean voice print
(cosine similarity); where the array gives a direction of arrival, agreement with the
speaker's usual direction is blended in, so two similar voices on opposite sides of the
desk stay apart. A new speaker starts when nothing is similar enough, up to
``max_speakers``. Long utterances are checked for a change of speaker inside them and
split there. At Stop, `recluster` revisits every turn with hindsight (average-linkage
clustering of all voice prints) and keeps the live labels wherever they were right.

Only voice prints (256 floats per turn) and timings are kept, never audio.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from appliance.config.schema import DiarizeConfig
from appliance.diarize.bearings import direction_cuts, seats
from appliance.diarize.changes import (
    MIN_SIDE_S,
    SHORT_VOICED_S,
    find_changes,
    is_change,
    pause_cuts,
    print_votes,
    vote_changes,
)
from appliance.diarize.direction import Direction
from appliance.diarize.embedder import RATE, Embedder, pool, speech_span, voiced_seconds
from appliance.diarize.prints import SpeakerPrint, new_print
from appliance.diarize.recluster import CLINICIAN, ENROLLED_WEIGHT_S, relabel

MIN_VOICED_S = 0.3  # less than this is a cough or a click: no turn
MIN_SEGMENT_S = 0.5  # shorter audio cannot be told apart by voice
CHANGE_MIN_S = 2.5  # utterances this long are checked for a change of speaker
CHANGE_MARGIN = 0.1  # a change inside an utterance needs sides less alike than a new speaker does (short sides)
MAX_TURNS = 20_000  # voice prints kept for one visit (~20 MB; a 2-hour visit has ~2,000 turns)
PRINT_MIN_S = 1.5  # a speaker's print needs this much speech to judge a split by
SHORT_PART_S = 2.0  # a split-off part this short is too short a print to found a new speaker on
UNSURE_MARGIN = 0.08  # best and second-best speaker closer than this (by voice alone): say so
LOOSE_BAND = 0.2  # ...or it fits only this little above the threshold while too few have spoken
SURE_DIRECTION = 0.5  # a direction at least this confident settles a close call
PRINT_RUN = 2  # windows in a row (~2 s) that must fit one known speaker for a change by voice prints


DirectionArg = float | Direction | Callable[[float, float], "Direction | None"] | None


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    label: str  # "S1", "S2", ...; with enrolment "S1" is the clinician
    index: int = -1  # turn number in this visit: the key of `recluster`'s answer
    uncertain: bool = False  # the voice fitted another speaker almost as well: a person should check


@dataclass
class _Record:
    start: float
    end: float
    label: str
    vector: np.ndarray = field(repr=False)
    direction: Direction | None


class OnlineDiarizer:
    def __init__(self, cfg: DiarizeConfig, embedder: Embedder, *, enrolled: np.ndarray | None = None) -> None:
        self.cfg, self.embedder = cfg, embedder
        self._speakers: list[SpeakerPrint] = []
        self._records: list[_Record] = []
        self._lock = threading.Lock()
        self.enrolled = None if enrolled is None else np.asarray(enrolled, np.float32).reshape(-1)
        if self.enrolled is not None:
            self.enrolled = self.enrolled / (np.linalg.norm(self.enrolled) + 1e-12)
            self._speakers.append(new_print(CLINICIAN, self.enrolled.size, self.enrolled, ENROLLED_WEIGHT_S))

    # -- live --------------------------------------------------------------------
    def assign(self, audio16k: np.ndarray, start: float, end: float, direction: DirectionArg = None) -> list[Turn]:
        """Label one utterance (split where the speaker changes); [] for silence or too little audio.

        ``direction`` is an azimuth in degrees, a `Direction`, or a callable (start, end) →
        Direction such as `DirectionTracker.direction`, which also gives split parts their own.
        """
        audio = np.asarray(audio16k, np.float32).reshape(-1)
        if audio.size < MIN_SEGMENT_S * RATE or voiced_seconds(audio) < MIN_VOICED_S:
            return []
        scale = (end - start) / (audio.size / RATE) if end > start else 1.0  # audio s → timeline s
        moves: list[float] = []
        if callable(direction) and self.cfg.use_direction and self.cfg.change_detection:
            with self._lock:
                seat_of = seats(self._speakers)
            moves = direction_cuts(audio, start, scale, direction, seat_of)
        pieces = self._segments(audio, moves)
        with self._lock:
            turns: list[Turn] = []
            for a, b, vector in pieces:
                t0, t1 = round(start + a * scale, 3), round(start + b * scale, 3)
                d = self._direction(direction, t0, t1, whole=len(pieces) == 1)
                # A short split-off part (a one-word answer) is someone already known, not the
                # previous part's speaker: the split says the voice changed.
                other_than = turns[-1].label if turns and len(pieces) > 1 and b - a < SHORT_PART_S else None
                label, unsure = self._decide(vector, d, other_than)
                self._speaker(label).add(vector, b - a, d)
                if turns and turns[-1].label == label and turns[-1].index >= 0:  # a false split, healed
                    rec = self._records[turns[-1].index]
                    rec.vector = pool(np.stack([rec.vector, vector]), np.array([rec.end - rec.start, t1 - t0]))
                    rec.end = t1
                    turns[-1] = Turn(turns[-1].start, t1, label, turns[-1].index, turns[-1].uncertain or unsure)
                    continue
                index = -1  # past the bound the turn is labelled live but not revisited at Stop
                if len(self._records) < MAX_TURNS:
                    self._records.append(_Record(t0, t1, label, vector, d))
                    index = len(self._records) - 1
                turns.append(Turn(t0, t1, label, index, unsure))
            return turns

    def _segments(self, audio: np.ndarray, moves: list[float]) -> list[tuple[float, float, np.ndarray]]:
        """(start s, end s, voice print) of each single-speaker stretch of ``audio``; ``moves``
        are times (s into ``audio``) where the voice moved from one speaker's seat to another's."""
        lo, hi = speech_span(audio)
        need = int(MIN_SEGMENT_S * RATE)
        if hi - lo < need:  # a short voiced core keeps some of its surroundings
            lo = max(0, min((lo + hi - need) // 2, audio.size - need))
            hi = min(audio.size, lo + need)
        core, offset = audio[lo:hi], lo / RATE
        moved = [t - offset for t in moves if 0 < t - offset < core.size / RATE]
        with self._lock:  # the speakers known well enough to judge a split by, as they are now
            known = [s for s in self._speakers if s.weight >= PRINT_MIN_S]
        labels = [s.label for s in known]
        prints = np.stack([s.centroid() for s in known]) if known else np.zeros((0, self.embedder.dim), np.float32)
        centres, vectors, cuts = self._embed_parts(core, moved, prints)
        if not len(vectors):
            return []
        at_pauses = bool(cuts)  # windows were laid part by part: none straddles a cut
        if not cuts and self.cfg.change_detection and core.size / RATE >= CHANGE_MIN_S:
            cuts = find_changes(self.embedder, core, centres, vectors, self.cfg.threshold - CHANGE_MARGIN)
        if self.cfg.change_detection and core.size / RATE >= CHANGE_MIN_S:
            cuts = self._print_cuts(centres, vectors, cuts, core.size / RATE, labels, prints)
        edges = [0.0, *cuts, core.size / RATE]
        out = []
        half = self.embedder.window_s / 2
        for k, (a, b) in enumerate(pairwise(edges)):
            if at_pauses:
                inside = (centres >= a) & (centres < b)
            else:
                inside = (centres - half >= a - 0.1) & (centres + half <= b + 0.1)
            v = pool(vectors[inside]) if inside.any() else self._embed_short(core, a, b)
            if v is not None:  # the first and last turn keep the utterance's own edges
                out.append((0.0 if k == 0 else a + offset, audio.size / RATE if k == len(edges) - 2 else b + offset, v))
        return out

    def _print_cuts(self, centres: np.ndarray, vectors: np.ndarray, cuts: list[float], duration: float,
                    labels: list[str], prints: np.ndarray) -> list[float]:
        """``cuts`` and where the windows' votes for the known speakers (``labels``, ``prints``)
        change hands: a change where neither side alone is unlike the other (an answer the
        clinician talks over mixes both voices at the boundary) but each stretch clearly fits
        someone else."""
        votes = print_votes(centres, vectors, prints, labels, self.embedder.window_s / 2)
        found = [(a + b) / 2 for a, b in vote_changes(votes, PRINT_RUN)]
        extra = [t for t in found if MIN_SIDE_S <= t <= duration - MIN_SIDE_S
                 and all(abs(t - c) >= MIN_SIDE_S for c in cuts)]
        return sorted([*cuts, *extra])

    def _embed_short(self, core: np.ndarray, a: float, b: float) -> np.ndarray | None:
        """The print of a part too short for a window of its own: the shortest audio the
        embedder takes, centred on it."""
        v = self.embedder.embed(core[int(a * RATE):int(b * RATE)])
        if v is None:
            half = int(MIN_SEGMENT_S * RATE) // 2 + 1
            mid = int((a + b) / 2 * RATE)
            v = self.embedder.embed(core[max(0, mid - half):mid + half])
        return v

    def _embed_parts(self, core: np.ndarray, moved: list[float],
                     prints: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[float]]:
        """Window prints of ``core`` laid so that none straddles the places its speaker moved
        (``moved``) or else its longest gaps; the cuts where the speaker changes, judged with the
        known speakers' ``prints``. Costs one or two windows more than laying them across."""
        cuts = moved or (pause_cuts(core) if self.cfg.change_detection else [])
        edges = [0.0, *cuts, core.size / RATE]
        parts = []
        for a, b in pairwise(edges):
            part = core[int(a * RATE):int(b * RATE)]
            c, v = self.embedder.window_embeddings(part)
            if len(v):
                parts.append((a, voiced_seconds(part) < SHORT_VOICED_S, c + a, v))
        if not parts:
            return np.zeros(0), np.zeros((0, 0), np.float32), []
        if moved:  # the seats settle it
            return np.concatenate([p[2] for p in parts]), np.concatenate([p[3] for p in parts]), moved
        changes = [a1 for (_, short0, _, v0), (a1, short1, _, v1) in pairwise(parts)
                   if is_change(pool(v0), pool(v1), prints, self.cfg.threshold - CHANGE_MARGIN,
                                short=short0 or short1)]
        return np.concatenate([p[2] for p in parts]), np.concatenate([p[3] for p in parts]), changes

    def _direction(self, direction: DirectionArg, t0: float, t1: float, whole: bool) -> Direction | None:
        if not self.cfg.use_direction or direction is None:
            return None
        if callable(direction):
            return direction(t0, t1)
        if not whole:
            return None  # one bearing for a split utterance belongs to neither part
        if isinstance(direction, Direction):
            return direction
        return Direction(float(direction) % 360.0, 1.0)

    def _threshold(self, label: str) -> float:
        return self.cfg.enrolled_threshold if self.enrolled is not None and label == CLINICIAN else self.cfg.threshold

    def _decide(self, vector: np.ndarray, d: Direction | None, other_than: str | None = None) -> tuple[str, bool]:
        """(label, uncertain) for one turn: the best-fitting speaker above its threshold, else a
        new one (not for a short split-off part while someone other than ``other_than`` is known)."""
        w = self.cfg.direction_weight if self.cfg.use_direction else 0.0
        scores = np.array([s.score(vector, d, w) for s in self._speakers])
        order = np.argsort(-scores)
        best = int(order[0]) if len(scores) else -1
        if best >= 0 and scores[best] >= self._threshold(self._speakers[best].label):
            # Unsure, unless a confident direction settles it: two speakers fit about as well,
            # or fewer people have spoken than the visit should have and this turn fits its
            # speaker only loosely (two similar voices merging: 0.72-0.79 measured for a second
            # espeak-ng woman, 0.81-0.94 for the same voice's sentences). The enrolled clinician
            # is known before anyone speaks: a fit to the enrolment is judged by its own threshold.
            close = len(scores) > 1 and scores[best] - scores[order[1]] < UNSURE_MARGIN
            heard = sum(s.speech_s > 0 for s in self._speakers)
            loose = (heard < self.cfg.min_speakers and self._speakers[best].anchor is None
                     and scores[best] < self._threshold(self._speakers[best].label) + LOOSE_BAND)
            sure_direction = d is not None and w > 0 and d.confidence >= SURE_DIRECTION
            return self._speakers[best].label, bool((close or loose) and not sure_direction)
        others = [int(i) for i in order if self._speakers[i].label != other_than and self._speakers[i].weight > 0]
        if other_than is not None and others:
            return self._speakers[others[0]].label, True
        if len(self._speakers) < max(1, self.cfg.max_speakers):
            label = f"S{max((int(s.label[1:]) for s in self._speakers), default=0) + 1}"
            self._speakers.append(new_print(label, vector.size))
            return label, False
        return self._speakers[best].label, True  # at the bound: the closest speaker, unsure

    def _speaker(self, label: str) -> SpeakerPrint:
        return next(s for s in self._speakers if s.label == label)

    # -- names ---------------------------------------------------------------------
    def display_names(self) -> dict[str, str]:
        """Label → what the panel shows: Clinician / Patient / Other, or Speaker N."""
        with self._lock:
            if self.enrolled is None:  # numbered by first appearance: stable however ids were renamed
                first: dict[str, int] = {}
                for i, r in enumerate(self._records):
                    first.setdefault(r.label, i)
                order = sorted((s.label for s in self._speakers), key=lambda lab: (first.get(lab, 1 << 30),
                                                                                    int(lab[1:])))
                return {lab: f"Speaker {k}" for k, lab in enumerate(order, 1)}
            others = [s for s in self._speakers if s.label != CLINICIAN and s.speech_s > 0]
            # The patient is the other person who talks most; ties go to who spoke first.
            others.sort(key=lambda s: (-s.speech_s, int(s.label[1:])))
            names = {CLINICIAN: "Clinician"}
            if others:
                names[others[0].label] = "Patient"
            rest = sorted(others[1:], key=lambda s: int(s.label[1:]))
            for i, s in enumerate(rest, 1):
                names[s.label] = "Other" if len(rest) == 1 else f"Other {i}"
            return names

    def display_name(self, label: str) -> str:
        return self.display_names().get(label, label)

    @property
    def turns(self) -> list[Turn]:
        with self._lock:
            return [Turn(r.start, r.end, r.label, i) for i, r in enumerate(self._records)]

    # -- across a restart -----------------------------------------------------------
    def export_turns(self, indices: tuple[int, ...]) -> list[tuple[int, float, float, str, np.ndarray,
                                                                     Direction | None]]:
        """(index, start, end, label, voice print, direction) of the given turns, for the store."""
        with self._lock:
            return [(i, r.start, r.end, r.label, r.vector, r.direction)
                    for i in sorted(set(indices)) if 0 <= i < len(self._records)
                    for r in [self._records[i]]]

    def restore(self, turns: list[tuple[float, float, str, np.ndarray, Direction | None]]) -> None:
        """Continue a visit whose labeller was lost (crash, restart): its turns, in order, become
        turns 0…n-1 again and the speakers' prints are rebuilt from them."""
        with self._lock:
            self._records = [_Record(a, b, label, np.asarray(v, np.float32), d) for a, b, label, v, d in turns]
            self._rebuild()

    # -- at Stop -------------------------------------------------------------------
    def recluster(self) -> dict[int, str]:
        """Relabel every turn with hindsight; returns turn index → label (all turns)."""
        with self._lock:
            if not self._records:
                return {}
            vectors = np.stack([r.vector for r in self._records])
            seconds = np.array([r.end - r.start for r in self._records])
            directions = [r.direction for r in self._records]
            labels = relabel(self.cfg, vectors, seconds, directions, [r.label for r in self._records],
                             enrolled=self.enrolled)
            for r, label in zip(self._records, labels, strict=True):
                r.label = label
            self._rebuild()
            return dict(enumerate(labels))

    def _rebuild(self) -> None:
        """Speakers' prints recomputed from the relabelled turns (the enrolment kept as anchor)."""
        speakers: dict[str, SpeakerPrint] = {}
        if self.enrolled is not None:
            speakers[CLINICIAN] = new_print(CLINICIAN, self.enrolled.size, self.enrolled, ENROLLED_WEIGHT_S)
        for r in self._records:
            if r.label not in speakers:
                speakers[r.label] = new_print(r.label, r.vector.size)
            speakers[r.label].add(r.vector, r.end - r.start, r.direction)
        self._speakers = sorted(speakers.values(), key=lambda s: int(s.label[1:]))
