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
from appliance.vad.utterance import RATE, Utterance

FRAME = 320  # 20 ms at 16 kHz
FRAME_S = FRAME / RATE
ABS_FLOOR_DB = -65.0  # below this nothing is speech, however quiet the room
QUIET_ROOM_DB = -60.0
NOISE_WINDOW = 150  # frames (3 s): speech always dips to the floor between words within this


class EnergySegmenter:
    def __init__(self, cfg: VadConfig) -> None:
        self.cfg = cfg
        self._min_speech = round(cfg.min_speech_ms / 20)
        self._min_silence = round(cfg.min_silence_ms / 20)
        self._max_frames = int(cfg.max_utterance_s / FRAME_S)
        self._pad = round(cfg.pad_ms / 20)
        self._carry = np.zeros(0, np.float32)  # samples short of a whole frame
        self._carry_t = 0.0
        # Primed with a quiet-room level so words spoken in the very first second count
        # as speech; a noisy room replaces it within NOISE_WINDOW.
        self._recent_db: deque[float] = deque([QUIET_ROOM_DB] * NOISE_WINDOW, maxlen=NOISE_WINDOW)
        self._pre: deque[np.ndarray] = deque(maxlen=max(self._pad, 1))  # bounded pre-roll
        self._frames: list[np.ndarray] = []  # utterance in flight
        self._levels: list[float] = []
        self._start = 0.0
        self._speech_frames = 0
        self._silence_run = 0
        self._active = False

    # -- public -----------------------------------------------------------------
    def feed(self, samples: np.ndarray, t: float) -> list[Utterance]:
        out: list[Utterance] = []
        if self._carry.size == 0:
            self._carry_t = t
        buf = np.concatenate([self._carry, samples.astype(np.float32, copy=False)])
        n = buf.size // FRAME
        for i in range(n):
            frame = buf[i * FRAME:(i + 1) * FRAME]
            out.extend(self._frame(frame, self._carry_t + i * FRAME_S))
        self._carry = buf[n * FRAME:].copy()
        self._carry_t += n * FRAME_S
        return out

    def flush(self) -> list[Utterance]:
        out = self._finish(trailing=self._silence_run) if self._active else []
        self._carry = np.zeros(0, np.float32)
        self._pre.clear()
        return out

    def in_speech(self) -> bool:
        return self._active

    def pending_audio(self) -> np.ndarray:
        return np.concatenate(self._frames) if self._frames else np.zeros(0, np.float32)

    def pending_start(self) -> float | None:
        return self._start if self._active else None

    # -- frame logic ---------------------------------------------------------------
    def _frame(self, frame: np.ndarray, t: float) -> list[Utterance]:
        rms = float(np.sqrt(np.mean(np.square(frame, dtype=np.float64))))
        db = 20.0 * np.log10(max(rms, 1e-7))
        self._recent_db.append(db)
        speech = db > self._threshold()
        if not self._active:
            if speech:
                self._active = True
                pre = list(self._pre) if self._pad else []
                self._frames = [*pre, frame]
                self._levels = [-120.0] * len(pre) + [db]
                self._start = t - len(pre) * FRAME_S
                self._speech_frames, self._silence_run = 1, 0
            elif self._pad:
                self._pre.append(frame)
            return []
        self._frames.append(frame)
        self._levels.append(db)
        if speech:
            self._speech_frames += 1
            self._silence_run = 0
        else:
            self._silence_run += 1
        if self._silence_run >= self._min_silence:
            return self._finish(trailing=self._silence_run)
        if len(self._frames) >= self._max_frames:
            return self._split()
        return []

    def _threshold(self) -> float:
        # Noise floor = quietest frame of the last 3 s (minimum statistics): a steady fan
        # becomes the floor within 3 s, while a voice never does since it pauses between words.
        return max(min(self._recent_db) + self.cfg.threshold_db, ABS_FLOOR_DB)

    def _emit(self, frames: list[np.ndarray], start: float, split: bool) -> Utterance:
        audio = np.concatenate(frames)
        return Utterance(start=start, end=start + audio.size / RATE, audio=audio, split=split)

    def _finish(self, trailing: int) -> list[Utterance]:
        keep = len(self._frames) - max(0, trailing - self._pad)
        frames, start, speech = self._frames[:keep], self._start, self._speech_frames
        self._reset_utterance()
        if speech < self._min_speech or not frames:
            return []
        return [self._emit(frames, start, split=False)]

    def _split(self) -> list[Utterance]:
        # Cut at the quietest frame in the last third so the piece ends in a gap.
        lo = len(self._frames) * 2 // 3
        cut = lo + int(np.argmin(self._levels[lo:])) + 1
        head = self._emit(self._frames[:cut], self._start, split=True)
        self._start += cut * FRAME_S
        self._frames, self._levels = self._frames[cut:], self._levels[cut:]
        threshold = self._threshold()
        self._speech_frames = sum(1 for lv in self._levels if lv > threshold)
        return [head]

    def _reset_utterance(self) -> None:
        self._active = False
        self._frames, self._levels = [], []
        self._speech_frames, self._silence_run = 0, 0
        self._pre.clear()
