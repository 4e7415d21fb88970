"""Speaker changes inside one utterance told by where the voice comes from.

Voice prints need about a second of one voice each side of a change; a patient's "Yes."
between two of the clinician's sentences, or an answer the clinician talks over, has less.
Its direction does not need that much: every ~0.25 s chunk of the direction tracker gives
a bearing, and once the speakers' usual directions are known (each has spoken from one
place), a run of chunks from another speaker's seat is that speaker's part. Only confident
chunks of voiced audio vote; a chunk between two seats, or near none, votes for nobody.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from appliance.diarize.changes import unvoiced_runs, vote_changes
from appliance.diarize.direction import Direction
from appliance.diarize.embedder import FRAME, RATE, voiced_frames
from appliance.diarize.prints import DIRECTION_HALF_DEG, SpeakerPrint

STEP_S = 0.25  # one tracker chunk per look
MIN_CONFIDENCE = 0.5  # a chunk's bearing must stand out this clearly to vote
SEAT_SPREAD = 0.8  # a speaker whose directions agree this well (1 = always one place) has a seat
MIN_SEAT_WEIGHT = 0.7  # ...after this much confident direction (one or two turns; dev rooms: 1.5, 1.0, 0.5 worse)
SEAT_APART_DEG = 2.5 * DIRECTION_HALF_DEG  # seats closer than this cannot be told apart by one chunk
NEAR_DEG = DIRECTION_HALF_DEG  # a chunk within this of a seat votes for its speaker
MIN_RUN = 2  # chunks in a row from one seat before a change counts (0.5 s)
MAX_CUTS = 4


def _gap(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def seats(speakers: Sequence[SpeakerPrint]) -> dict[str, float]:
    """Label → usual bearing (deg) of the speakers that keep to one place, if all are well apart."""
    out = {}
    for s in speakers:
        if s.bearing_weight >= MIN_SEAT_WEIGHT and abs(s.bearing) / s.bearing_weight >= SEAT_SPREAD:
            out[s.label] = math.degrees(np.angle(s.bearing)) % 360.0
    bearings = list(out.values())
    if len(out) < 2 or any(_gap(a, b) < SEAT_APART_DEG for i, a in enumerate(bearings) for b in bearings[i + 1:]):
        return {}
    return out


def _vote(d: Direction | None, seat_of: dict[str, float]) -> str | None:
    if d is None or d.confidence < MIN_CONFIDENCE:
        return None
    near = [(_gap(d.azimuth_deg, b), label) for label, b in seat_of.items()]
    dist, label = min(near)
    return label if dist <= NEAR_DEG else None


def direction_cuts(audio: np.ndarray, start: float, scale: float, direction: Callable[[float, float], Direction | None],
                   seat_of: dict[str, float]) -> list[float]:
    """Times (s into ``audio``) where the voice moves from one speaker's seat to another's.

    ``start`` and ``scale`` map audio seconds to the tracker's timeline."""
    if len(seat_of) < 2:
        return []
    voiced = voiced_frames(audio)
    per_step = max(1, int(STEP_S * RATE / FRAME))
    votes: list[tuple[float, float, str]] = []  # (audio s from, to, label)
    for k in range(len(voiced) // per_step):
        if voiced[k * per_step:(k + 1) * per_step].mean() < 0.5:
            continue
        a, b = k * STEP_S, (k + 1) * STEP_S
        label = _vote(direction(start + a * scale, start + b * scale), seat_of)
        if label is not None:
            votes.append((a, b, label))
    return [_quietest(voiced, a, b) for a, b in vote_changes(votes, MIN_RUN)][:MAX_CUTS]


def _quietest(voiced: np.ndarray, a: float, b: float) -> float:
    """The middle of the longest unvoiced stretch between ``a`` and ``b`` s, else their middle."""
    runs = unvoiced_runs(voiced, int(a * RATE / FRAME), int(b * RATE / FRAME))
    if not runs:
        return (a + b) / 2
    k, end = max(runs, key=lambda r: r[1] - r[0])  # the first of the longest
    return (k + end) / 2 * FRAME / RATE
