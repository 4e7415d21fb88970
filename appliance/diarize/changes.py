"""Speaker changes inside one utterance (two people talking without a pause long enough for the VAD).

At a pause: a question and its short answer ("Any allergies?" "No.") usually have a short
gap (0.1-0.5 s) that did not end the utterance. `pause_cuts` proposes the longest such
gaps; the parts between them are embedded on their own (windows never straddle a gap, so
a 0.6 s answer gets a print of its own, not one mixed with the question) and
`is_change` judges each pair of neighbours: clearly unlike each other, or each clearly
one of two different known speakers. Measured on espeak-ng, Piper and real voices: parts
of one speaker 0.62-0.80 alike, a question and its answer by another voice -0.1-0.31.

Without a pause (windows method, long utterances):
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

from appliance.diarize.embedder import FRAME, RATE, Embedder, pool, voiced_frames

MIN_SIDE_S = 1.0  # both sides of a change must have at least this much audio
CONTEXT_S = 1.5  # audio compared on each side of a candidate boundary
MAX_CHANGES = 4  # per utterance (a 28 s utterance with more is not a conversation we can split)
MIN_PAUSE_S = 0.1  # a gap inside an utterance this long may be a change of speaker
MAX_PAUSES = 2  # gaps tried per utterance (question, answer, next question)
MIN_PART_S = 0.5  # audio each side of a gap needs for a print of its own
PRINT_MARGIN = 0.15  # each side must fit its own known speaker this much better than the other's
SHORT_VOICED_S = 1.0  # a part with less voice than this has too noisy a print to compare with its neighbour


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


def unvoiced_runs(voiced: np.ndarray, lo: int, hi: int) -> list[tuple[int, int]]:
    """(first, past-last) frame of each unvoiced stretch of ``voiced[lo:hi]``, clipped to it."""
    runs, k = [], lo
    while k < hi:
        if voiced[k]:
            k += 1
            continue
        end = k
        while end < hi and not voiced[end]:
            end += 1
        runs.append((k, end))
        k = end
    return runs


def pause_cuts(audio: np.ndarray) -> list[float]:
    """Middles (s) of the longest gaps inside ``audio`` that leave each part MIN_PART_S of audio."""
    voiced = voiced_frames(audio)
    gaps = [((end - k), (k + end) / 2 * FRAME / RATE) for k, end in unvoiced_runs(voiced, 0, len(voiced))
            if k > 0 and end < len(voiced) and (end - k) * FRAME / RATE >= MIN_PAUSE_S]
    cuts: list[float] = []
    duration = audio.size / RATE
    for _, t in sorted(gaps, reverse=True):
        if len(cuts) < MAX_PAUSES and all(abs(t - c) >= MIN_PART_S for c in [0.0, *cuts, duration]):
            cuts.append(t)
    return sorted(cuts)


def is_change(left: np.ndarray, right: np.ndarray, prints: np.ndarray, threshold: float, *,
              short: bool = False) -> bool:
    """Do two neighbouring parts' prints belong to different speakers?

    Clearly unlike each other (below ``threshold``; not judged when one part is ``short``:
    "Yes," and "with food" of one voice were 0.48 alike, "Good morning," and the rest of the
    sentence in a reverberant room 0.4), or, given the known speakers' ``prints`` (k, dim),
    each side fits a different one, PRINT_MARGIN better than the other side's.
    """
    if not short and float(left @ right) < threshold:
        return True
    if len(prints) < 2:
        return False
    fit_left, fit_right = prints @ left, prints @ right
    a, b = int(np.argmax(fit_left)), int(np.argmax(fit_right))
    return a != b and fit_left[a] - fit_left[b] >= PRINT_MARGIN and fit_right[b] - fit_right[a] >= PRINT_MARGIN


def vote_changes(votes: list[tuple[float, float, str]], min_run: int) -> list[tuple[float, float]]:
    """Where runs of votes change speaker: (end of one run, start of the next).

    ``votes`` are (from s, to s, label) in time order, from stretches that are sure of one
    speaker; unsure stretches have no vote and do not break a run. A run of fewer than
    ``min_run`` votes is a stray (a reflection, a word that sounds like someone else)."""
    runs: list[list[tuple[float, float, str]]] = []
    for v in votes:
        if runs and runs[-1][-1][2] == v[2]:
            runs[-1].append(v)
        else:
            runs.append([v])
    kept = [r for r in runs if len(r) >= min_run]
    return [(before[-1][1], after[0][0]) for before, after in pairwise(kept) if before[-1][2] != after[0][2]]


def print_votes(centres: np.ndarray, vectors: np.ndarray, prints: np.ndarray, labels: list[str],
                half_s: float) -> list[tuple[float, float, str]]:
    """A vote per window for the known speaker it fits PRINT_MARGIN better than any other."""
    if len(prints) < 2 or not len(vectors):
        return []
    fits = vectors @ prints.T  # (windows, speakers)
    order = np.argsort(-fits, axis=1)
    out = []
    for c, f, o in zip(centres, fits, order, strict=True):
        if f[o[0]] - f[o[1]] >= PRINT_MARGIN:
            out.append((float(c) - half_s, float(c) + half_s, labels[int(o[0])]))
    return out
