"""The unit of audio handed from capture to the rest of the system."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CapturedBlock:
    raw: np.ndarray  # float32, shape (n, channels), native device rate, in [-1, 1] — for direction of arrival
    rate: int  # native rate of raw
    mono16k: np.ndarray  # float32, shape (m,), 16 kHz mono mix of cfg.asr_channels (all if empty) — for VAD/ASR
    t: float  # seconds of 16 kHz audio delivered before this block since Capture.start() (pauses excluded)

    @property
    def duration(self) -> float:
        """Length of the 16 kHz stream this block carries, in seconds."""
        return len(self.mono16k) / 16000.0
