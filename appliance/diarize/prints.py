"""A speaker's voice print and usual direction, and how well a turn fits them.

Shared by the live labelling and the clustering at Stop so both judge a turn the same
way: cosine similarity to the speaker's running-mean voice print, blended with agreement
between the turn's direction of arrival and the speaker's usual direction. The blend's
weight shrinks with the turn's direction confidence and with how scattered the
speaker's directions have been, so a clinician who walks about is judged by voice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from appliance.diarize.direction import Direction

DIRECTION_HALF_DEG = 30.0  # direction agreement falls to 0.5 at this angular distance
KAPPA = math.log(2) / (1 - math.cos(math.radians(DIRECTION_HALF_DEG)))
MAX_TURN_WEIGHT_S = 10.0  # one long monologue must not swamp a print


def agreement(delta_rad: np.ndarray | float) -> np.ndarray:
    """1 for the same direction, 0.5 at DIRECTION_HALF_DEG apart, ~0 beyond 90 degrees."""
    return np.exp(KAPPA * (np.cos(delta_rad) - 1.0))


def fused_scores(cos: np.ndarray, azimuth: np.ndarray, confidence: np.ndarray, bearing: np.ndarray,
                 bearing_weight: np.ndarray, direction_weight: float) -> np.ndarray:
    """(turns, speakers) voice similarities ``cos`` blended with direction agreement.

    ``azimuth`` (radians, NaN if unknown) and ``confidence`` per turn; ``bearing`` (sum of
    confidence-weighted unit phasors) and ``bearing_weight`` per speaker, shaped (speakers,)
    or, for one speaker per turn, (turns, 1).
    """
    az, conf = np.asarray(azimuth, float).reshape(-1, 1), np.asarray(confidence, float).reshape(-1, 1)
    bearing, bw = np.asarray(bearing), np.asarray(bearing_weight, float)
    if bearing.ndim == 1:
        bearing, bw = bearing[None, :], bw[None, :]
    known = np.isfinite(az) & (conf > 0)
    if direction_weight <= 0 or not known.any() or not (bw > 0).any():
        return cos
    spread = np.where(bw > 0, np.abs(bearing) / np.maximum(bw, 1e-12), 0.0)  # 1: always from one place
    w = direction_weight * np.where(known, conf, 0.0) * spread
    return (1 - w) * cos + w * agreement(np.nan_to_num(az) - np.angle(bearing))


@dataclass
class SpeakerPrint:
    label: str
    total: np.ndarray  # duration-weighted sum of voice prints
    weight: float = 0.0
    speech_s: float = 0.0
    bearing: complex = 0j  # confidence-weighted sum of unit phasors of directions
    bearing_weight: float = 0.0
    anchor: np.ndarray | None = None  # the enrolled clinician's print, always a reference

    def centroid(self) -> np.ndarray:
        return self.total / (np.linalg.norm(self.total) + 1e-12)

    def add(self, vector: np.ndarray, seconds: float, direction: Direction | None) -> None:
        w = min(seconds, MAX_TURN_WEIGHT_S)
        self.total = self.total + w * vector
        self.weight += w
        self.speech_s += seconds
        if direction is not None:
            self.bearing += direction.confidence * np.exp(1j * math.radians(direction.azimuth_deg))
            self.bearing_weight += direction.confidence

    def score(self, vector: np.ndarray, direction: Direction | None, direction_weight: float) -> float:
        """How well a turn fits: cosine to the print, blended with direction agreement."""
        cos = float(vector @ self.centroid())
        if self.anchor is not None:
            cos = max(cos, float(vector @ self.anchor))
        if direction is None:
            return cos
        fused = fused_scores(np.array([[cos]]), np.array([math.radians(direction.azimuth_deg)]),
                             np.array([direction.confidence]), np.array([self.bearing]),
                             np.array([self.bearing_weight]), direction_weight)
        return float(fused[0, 0])


def new_print(label: str, dim: int, anchor: np.ndarray | None = None, anchor_weight: float = 0.0) -> SpeakerPrint:
    if anchor is None:
        return SpeakerPrint(label, np.zeros(dim, np.float32))
    return SpeakerPrint(label, anchor * anchor_weight, anchor_weight, anchor=anchor)
