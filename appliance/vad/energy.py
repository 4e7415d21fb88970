"""Energy VAD with an adaptive noise floor.

Cheap enough to run inside the capture callback on a Pi. A frame is speech when its
level is `threshold_db` above the tracked noise floor; utterances end at a pause of
`min_silence_ms` and are capped at `max_utterance_s`, split at the quietest frame so a
long monologue still fits Whisper's 30 s window without cutting a word in half.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from appliance.config.schema import VadConfig
from appliance.vad.framing import FrameSegmenter, FrameVerdict

FRAME = 320  # 20 ms at 16 kHz
ABS_FLOOR_DB = -65.0  # below this nothing is speech, however quiet the room
QUIET_ROOM_DB = -60.0
NOISE_WINDOW = 150  # frames (3 s): speech always dips to the floor between words within this


class EnergySegmenter(FrameSegmenter):
    def __init__(self, cfg: VadConfig) -> None:
        super().__init__(cfg, FRAME)
        # Primed with a quiet-room level so words spoken in the very first second count
        # as speech; a noisy room replaces it within NOISE_WINDOW.
        self._recent_db: deque[float] = deque([QUIET_ROOM_DB] * NOISE_WINDOW, maxlen=NOISE_WINDOW)

    def classify(self, frame: np.ndarray) -> FrameVerdict:
        rms = float(np.sqrt(np.mean(np.square(frame, dtype=np.float64))))
        db = 20.0 * np.log10(max(rms, 1e-7))
        self._recent_db.append(db)
        # Noise floor = quietest frame of the last 3 s (minimum statistics): a steady fan
        # becomes the floor within 3 s, while a voice never does since it pauses between words.
        speech = db > max(min(self._recent_db) + self.cfg.threshold_db, ABS_FLOOR_DB)
        return FrameVerdict(starts=speech, continues=speech, level=db)
