"""Hindsight at Stop: cluster every turn's voice print again and keep the live labels stable.

Online labelling decides each turn knowing only the past; an early turn decided against
an immature speaker print can be wrong. At Stop:
1. average-linkage clustering of all prints (cosine distance, direction blended in) cut
   at the similarity threshold gives a fine first grouping (at most 30 groups; a very
   long visit starts from the live labels instead, to bound memory);
2. groups are merged while one group's turns fit the other's print above the threshold
   (the live rule: short turns' prints are noisy, so two turns of one person can be less
   alike than each is to that person's mean print); groups with under a second of speech
   (coughs, crosstalk) join their best fit;
3. every turn moves to the print it fits best, if it fits it above the threshold (twice);
4. merges continue until at most ``max_speakers`` remain; fewer than ``min_speakers``
   splits the largest group only if its halves sound clearly different;
5. groups are matched to the live labels by shared speaking time (Hungarian assignment),
   so only the turns that were wrong change label; the enrolment's group is the clinician.
Everything is vectorised: a 2-hour visit (~2,000 turns) reclusters in well under a second.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import squareform

from appliance.config.schema import DiarizeConfig
from appliance.diarize.direction import Direction
from appliance.diarize.prints import MAX_TURN_WEIGHT_S, agreement, fused_scores

TINY_GROUP_S = 1.0  # a group with less speech is an outlier (cough, crosstalk), not a person
MAX_GROUPS = 30  # first grouping bound: keeps the merging cheap
MAX_LINKAGE = 1000  # beyond this many turns (8 MB per distance matrix) start from the live labels
SPLIT_MAX_COS = 0.8  # halves whose mean prints are more alike than this are one person
ENROLLED_WEIGHT_S = 10.0
CLINICIAN = "S1"


class _Turns:
    """All turns as arrays (plus the enrolment as a pseudo-turn that never moves)."""

    def __init__(self, cfg: DiarizeConfig, vectors: np.ndarray, seconds: np.ndarray,
                 directions: list[Direction | None], enrolled: np.ndarray | None) -> None:
        self.cfg, self.n = cfg, len(vectors)
        v = [vectors.astype(np.float64)]
        self.anchor = None
        if enrolled is not None:
            v.append(np.asarray(enrolled, np.float64)[None, :])
            self.anchor = self.n
        self.v = np.vstack(v)
        m = len(self.v)
        self.seconds = np.append(seconds, [0.0] * (m - self.n))
        self.weight = np.minimum(self.seconds, MAX_TURN_WEIGHT_S)  # weight in a print
        self.fit_weight = np.maximum(self.seconds, 1e-3)  # weight in a group's mean fit
        if self.anchor is not None:
            # barely counts in a mean fit, yet speaks for its group while the clinician is silent
            self.weight[self.anchor], self.fit_weight[self.anchor] = ENROLLED_WEIGHT_S, 1e-6
        dirs = [*directions, *([None] * (m - self.n))]
        self.az = np.array([math.radians(d.azimuth_deg) if d else np.nan for d in dirs])
        self.conf = np.array([d.confidence if d else 0.0 for d in dirs])
        self.w = cfg.direction_weight if cfg.use_direction else 0.0
        self.thr = cfg.threshold

    def pairwise_distance(self, rows: np.ndarray) -> np.ndarray:
        v, az, conf = self.v[rows], self.az[rows], self.conf[rows]
        sim = v @ v.T
        if self.w > 0 and (conf > 0).any():
            w = self.w * np.minimum(conf[:, None], conf[None, :])
            sim = (1 - w) * sim + w * agreement(np.nan_to_num(az)[:, None] - np.nan_to_num(az)[None, :])
        dist = np.clip(1.0 - (sim + sim.T) / 2, 0.0, 2.0)
        np.fill_diagonal(dist, 0.0)
        return dist

    def stats(self, g: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
        total = np.zeros((k, self.v.shape[1]))
        np.add.at(total, g, self.weight[:, None] * self.v)
        phasor = self.conf * np.exp(1j * np.nan_to_num(self.az))
        bearing = np.bincount(g, phasor.real, k) + 1j * np.bincount(g, phasor.imag, k)
        return total, np.bincount(g, self.weight, k), bearing, np.bincount(g, self.conf, k)

    def scores(self, g: np.ndarray, k: int) -> np.ndarray:
        """(turns, groups): how well each turn fits each group's print (itself included)."""
        total, _, bearing, bw = self.stats(g, k)
        cos = self.v @ (total / (np.linalg.norm(total, axis=1, keepdims=True) + 1e-12)).T
        if self.anchor is not None:
            col = g[self.anchor]
            cos[:, col] = np.maximum(cos[:, col], self.v @ self.v[self.anchor])
        return fused_scores(cos, self.az, self.conf, bearing, bw, self.w)

    def own_scores(self, g: np.ndarray, k: int) -> np.ndarray:
        """Each turn against its own group's print made without it (-inf if nothing is left)."""
        total, weight, bearing, bw = self.stats(g, k)
        rest = total[g] - self.weight[:, None] * self.v
        cos = np.einsum("ij,ij->i", self.v, rest) / (np.linalg.norm(rest, axis=1) + 1e-12)
        if self.anchor is not None:
            with_anchor = g == g[self.anchor]
            cos = np.where(with_anchor, np.maximum(cos, self.v @ self.v[self.anchor]), cos)
        phasor = self.conf * np.exp(1j * np.nan_to_num(self.az))
        fused = fused_scores(cos[:, None], self.az, self.conf, (bearing[g] - phasor)[:, None],
                             (bw[g] - self.conf)[:, None], self.w)[:, 0]
        return np.where(weight[g] - self.weight > 1e-9, fused, -np.inf)

    def group_thresholds(self, g: np.ndarray, k: int) -> np.ndarray:
        thr = np.full(k, self.thr)
        if self.anchor is not None:
            thr[g[self.anchor]] = self.cfg.enrolled_threshold
        return thr


def _compact(g: np.ndarray) -> tuple[np.ndarray, int]:
    _, g = np.unique(g, return_inverse=True)
    return g, int(g.max()) + 1


def _merge_once(t: _Turns, g: np.ndarray, *, only_tiny: bool, force: bool) -> np.ndarray | None:
    """Merge the best-fitting pair of groups (None when no pair may merge)."""
    g, k = _compact(g)
    if k < 2:
        return None
    members = np.zeros((len(g), k))
    members[np.arange(len(g)), g] = t.fit_weight
    members /= np.maximum(members.sum(axis=0, keepdims=True), 1e-12)
    fit = members.T @ t.scores(g, k)  # fit[a, b]: group a's turns against group b's print
    pair = (fit + fit.T) / 2
    np.fill_diagonal(pair, -np.inf)
    speech = np.bincount(g, t.seconds, k)
    anchor_group = g[t.anchor] if t.anchor is not None else -1
    if only_tiny:
        movable = (speech < TINY_GROUP_S) & (np.arange(k) != anchor_group)
        pair[~movable, :] = -np.inf
    elif not force:
        thr = t.group_thresholds(g, k)
        pair[pair < np.maximum(thr[:, None], thr[None, :])] = -np.inf
    a, b = np.unravel_index(int(np.argmax(pair)), pair.shape)
    if not np.isfinite(pair[a, b]):
        return None
    return np.where(g == a, b, g)


def _reassign(t: _Turns, g: np.ndarray) -> np.ndarray:
    g, k = _compact(g)
    scores = t.scores(g, k)
    scores[np.arange(len(g)), g] = t.own_scores(g, k)
    best = np.argmax(scores, axis=1)
    gain = scores[np.arange(len(g)), best] > scores[np.arange(len(g)), g]
    fits = scores[np.arange(len(g)), best] >= t.group_thresholds(g, k)[best]
    move = gain & fits  # a turn leaves only for a group it truly fits: a lone turn stays a person
    if t.anchor is not None:
        move[t.anchor] = False
    return np.where(move, best, g)


def _split_largest(t: _Turns, g: np.ndarray) -> np.ndarray:
    """Split the group with the most speech in two if its halves sound clearly different."""
    g, k = _compact(g)
    big = int(np.argmax(np.bincount(g, t.seconds, k)))
    rows = np.flatnonzero(g == big)
    if len(rows) < 2:
        return g
    tree = linkage(squareform(t.pairwise_distance(rows), checks=False), method="average")
    halves = fcluster(tree, t=2, criterion="maxclust")
    if len(np.unique(halves)) < 2:
        return g
    means = [t.v[rows[halves == h]].T @ t.weight[rows[halves == h]] for h in (1, 2)]
    cos = float(means[0] @ means[1] / (np.linalg.norm(means[0]) * np.linalg.norm(means[1]) + 1e-12))
    if cos >= SPLIT_MAX_COS:
        return g
    out = g.copy()
    out[rows[halves == 2]] = k
    return out


def relabel(cfg: DiarizeConfig, vectors: np.ndarray, seconds: np.ndarray, directions: list[Direction | None],
            online: list[str], *, enrolled: np.ndarray | None = None) -> list[str]:
    """A label per turn, reusing the ``online`` labels wherever the new groups agree with them."""
    t = _Turns(cfg, vectors, seconds, directions, enrolled)
    if t.n == 0:
        return []
    m = len(t.v)
    if m == 1:
        return list(online)
    if m <= MAX_LINKAGE:
        tree = linkage(squareform(t.pairwise_distance(np.arange(m)), checks=False), method="average")
        g = fcluster(tree, t=1.0 - cfg.threshold, criterion="distance")
        if g.max() > MAX_GROUPS:
            g = fcluster(tree, t=MAX_GROUPS, criterion="maxclust")
    else:
        names = sorted(set(online))
        g = np.array([names.index(x) for x in online] + ([len(names)] if t.anchor is not None else []))
    for only_tiny in (True, False):
        while (merged := _merge_once(t, g, only_tiny=only_tiny, force=False)) is not None:
            g = merged
    for _ in range(2):
        g = _reassign(t, g)
    g, k = _compact(g)
    lone_anchor = t.anchor is not None and np.sum(g == g[t.anchor]) == 1  # a clinician who never spoke
    while k > max(1, cfg.max_speakers) + lone_anchor and (merged := _merge_once(t, g, only_tiny=False,
                                                                                 force=True)) is not None:
        g, k = _compact(merged)
    if k - lone_anchor < min(cfg.min_speakers, t.n):
        g = _split_largest(t, g)
    return _match(_compact(g)[0], t, online)


def _match(g: np.ndarray, t: _Turns, online: list[str]) -> list[str]:
    """Name each group after the live label it shares most speaking time with."""
    k = int(g.max()) + 1
    names = sorted(set(online) | ({CLINICIAN} if t.anchor is not None else set()), key=lambda s: int(s[1:]))
    overlap = np.zeros((k, len(names)))
    for i in range(t.n):
        overlap[g[i], names.index(online[i])] += t.fit_weight[i]
    if t.anchor is not None:
        col = names.index(CLINICIAN)
        overlap[:, col] = -1.0  # only the enrolment's group may be the clinician
        overlap[g[t.anchor], col] = 1e9
    rows, cols = linear_sum_assignment(-overlap)
    label_of = {int(r): names[c] for r, c in zip(rows, cols, strict=True) if overlap[r, c] > 0}
    fresh = max(int(s[1:]) for s in names) + 1
    for group in range(k):
        if group not in label_of:
            label_of[group], fresh = f"S{fresh}", fresh + 1
    return [label_of[int(g[i])] for i in range(t.n)]
