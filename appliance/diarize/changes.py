"""Speaker changes inside one utterance (two people talking without a pause between them).

Coarse: the voice prints of ~1.5 s of context left and right of every boundary between
consecutive windows; a boundary whose sides are less similar than the new-speaker
threshold is a candidate, the least similar first, each part at least 1 s long.
Fine: a window slid across the candidate (0.4 s grid) looks more like the right side the
more of it lies right of the change; where it turns from left-like to right-like is the
change. That costs three extra windows per change found, never for ordinary utterances.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from appliance.diarize.embedder import RATE, Embedder, pool

MIN_SIDE_S = 1.0  # both sides of a change must have at least this much audio
CONTEXT_S = 1.5  # audio compared on each side of a candidate boundary
MAX_CHANGES = 4  # per utterance (a 28 s utterance with more is not a conversation we can split)


def _boundaries(centres: np.ndarray, vectors: np.ndarray, duration: float) -> list[tuple[float, float]]:
    """(similarity of the two sides, boundary time) between consecutive windows."""
    out = []
    for k in range(1, len(centres)):
        b = float(centres[k - 1] + centres[k]) / 2
        if b < MIN_SIDE_S or b > duration - MIN_SIDE_S:
            continue
        left = vectors[(centres <= b) & (centres >= b - CONTEXT_S)]
        right = vectors[(centres > b) & (centres <= b + CONTEXT_S)]
        if len(left) and len(right):
            out.append((float(pool(left) @ pool(right)), b))
    return out


def _refine(embedder: Embedder, audio: np.ndarray, b: float, left: np.ndarray, right: np.ndarray,
            centres: np.ndarray, vectors: np.ndarray) -> float:
    """The change near ``b``: where a sliding window turns from left-like to right-like."""
    half, step = embedder.window_s / 2, embedder.window_s / 2
    probes = {float(c): v for c, v in zip(centres, vectors, strict=True) if abs(c - b) <= 3 * step}
    for c in (b - step, b, b + step):  # between the existing windows: a half-window grid
        lo, hi = int((c - half) * RATE), int((c + half) * RATE)
        if lo >= 0 and hi <= audio.size and all(abs(c - p) > step / 2 for p in probes):
            v = embedder.embed(audio[lo:hi])
            if v is not None:
                probes[c] = v
    grid = sorted(probes)
    lean = [float(probes[c] @ right - probes[c] @ left) for c in grid]  # < 0 left-like, > 0 right-like
    best, best_dist = b, np.inf
    for (c0, d0), (c1, d1) in pairwise(zip(grid, lean, strict=True)):
        if d0 < 0 <= d1:
            t = c0 + (c1 - c0) * (-d0) / (d1 - d0)
            if abs(t - b) < best_dist:
                best, best_dist = t, abs(t - b)
    return best


def find_changes(embedder: Embedder, audio: np.ndarray, centres: np.ndarray, vectors: np.ndarray,
                 threshold: float) -> list[float]:
    """Times (s from the start of ``audio``) where the speaker changes; [] for one speaker."""
    duration = audio.size / RATE
    chosen: list[float] = []
    for score, b in sorted(_boundaries(centres, vectors, duration)):
        if score >= threshold or len(chosen) >= MAX_CHANGES:
            break
        if any(abs(b - c) < MIN_SIDE_S for c in chosen):
            continue  # the same change seen from a neighbouring boundary, or too close to one
        left = pool(vectors[(centres <= b) & (centres >= b - CONTEXT_S)])
        right = pool(vectors[(centres > b) & (centres <= b + CONTEXT_S)])
        t = _refine(embedder, audio, b, left, right, centres, vectors)
        if MIN_SIDE_S <= t <= duration - MIN_SIDE_S and all(abs(t - c) >= MIN_SIDE_S for c in chosen):
            chosen.append(t)
    return sorted(chosen)
