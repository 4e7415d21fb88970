"""The utterance rules every segmenter shares, over fixed-size frames.

A subclass only says, per frame, whether speech starts / continues there and how loud
the frame is, and where to cut an utterance that reached the cap. This class turns that
into utterances: pre-roll and trailing padding, minimum speech, the pause that ends an
utterance, the length cap, and bounded RAM (pre-roll ring + at most one capped utterance).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from appliance.config.schema import VadConfig
from appliance.vad.utterance import RATE, Utterance


@dataclass(frozen=True)
class FrameVerdict:
    starts: bool  # speech begins here when no utterance is in flight
    continues: bool  # the utterance in flight goes on through this frame
    level: float  # loudness, used to cut at the gap between two words


class FrameSegmenter:
    def __init__(self, cfg: VadConfig, frame_len: int) -> None:
        self.cfg = cfg
        self.frame_len = frame_len
        self.frame_s = frame_len / RATE
        ms = self.frame_s * 1000
        self._min_speech = max(1, round(cfg.min_speech_ms / ms))
        self._min_silence = max(1, round(cfg.min_silence_ms / ms))
        # A long utterance ends at a shorter pause: its text would otherwise wait for the end
        # of a monologue (decode time grows with length), and breaths are good cut points.
        self._long_frames = int(cfg.long_utterance_s / self.frame_s)
        self._long_min_silence = max(1, round(min(cfg.long_min_silence_ms, cfg.min_silence_ms) / ms))
        self._max_frames = int(cfg.max_utterance_s / self.frame_s)
        self._pad = round(cfg.pad_ms / ms)
        self._carry = np.zeros(0, np.float32)  # samples short of a whole frame
        self._carry_t = 0.0
        self._pre: deque[np.ndarray] = deque(maxlen=max(self._pad, 1))  # bounded pre-roll
        self._frames: list[np.ndarray] = []  # utterance in flight, bounded by the cap
        self._verdicts: list[FrameVerdict] = []
        self._start = 0.0
        self._speech_frames = 0
        self._silence_run = 0
        self._active = False

    # -- for subclasses ------------------------------------------------------------------
    def classify(self, frame: np.ndarray) -> FrameVerdict:
        raise NotImplementedError

    def split_cut(self, verdicts: list[FrameVerdict]) -> int:
        """Index (into ``verdicts``, the last third of the utterance) after which to cut."""
        return int(np.argmin([v.level for v in verdicts]))

    def reset_stream(self) -> None:
        """The audio stops being continuous (pause, stop): forget stream state."""

    # -- the Segmenter contract -----------------------------------------------------------
    def feed(self, samples: np.ndarray, t: float) -> list[Utterance]:
        out: list[Utterance] = []
        if self._carry.size == 0:
            self._carry_t = t
        buf = np.concatenate([self._carry, samples.astype(np.float32, copy=False)])
        n, fl = buf.size // self.frame_len, self.frame_len
        for i in range(n):
            out.extend(self._frame(buf[i * fl:(i + 1) * fl], self._carry_t + i * self.frame_s))
        self._carry = buf[n * fl:].copy()
        self._carry_t += n * self.frame_s
        return out

    def flush(self) -> list[Utterance]:
        out = self._finish(trailing=self._silence_run) if self._active else []
        self._carry = np.zeros(0, np.float32)
        self._pre.clear()
        self.reset_stream()
        return out

    def in_speech(self) -> bool:
        return self._active

    def pending_audio(self) -> np.ndarray:
        return np.concatenate(self._frames) if self._frames else np.zeros(0, np.float32)

    def pending_start(self) -> float | None:
        return self._start if self._active else None

    def trailing_silence_s(self) -> float:
        return self._silence_run * self.frame_s if self._active else 0.0

    def speech_end_samples(self) -> int:
        return (len(self._frames) - self._silence_run) * self.frame_len if self._active else 0

    def end_slack_samples(self) -> int:
        return self._pad * self.frame_len

    # -- utterance state machine -------------------------------------------------------
    def _frame(self, frame: np.ndarray, t: float) -> list[Utterance]:
        v = self.classify(frame)
        if not self._active:
            if v.starts:
                self._active = True
                pre = list(self._pre) if self._pad else []
                quiet = FrameVerdict(False, False, -np.inf)
                self._frames, self._verdicts = [*pre, frame], [quiet] * len(pre) + [v]
                self._start = t - len(pre) * self.frame_s
                self._speech_frames, self._silence_run = 1, 0
            elif self._pad:
                self._pre.append(frame)
            return []
        self._frames.append(frame)
        self._verdicts.append(v)
        if v.continues:
            self._speech_frames += 1
            self._silence_run = 0
        else:
            self._silence_run += 1
        needed = self._long_min_silence if len(self._frames) >= self._long_frames else self._min_silence
        if self._silence_run >= needed:
            return self._finish(trailing=self._silence_run)
        if len(self._frames) >= self._max_frames:
            return self._split()
        return []

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
        lo = len(self._frames) * 2 // 3  # cut in the last third, so pieces stay long
        cut = lo + self.split_cut(self._verdicts[lo:]) + 1
        head = self._emit(self._frames[:cut], self._start, split=True)
        self._start += cut * self.frame_s
        self._frames, self._verdicts = self._frames[cut:], self._verdicts[cut:]
        self._speech_frames = sum(1 for v in self._verdicts if v.continues)
        return [head]

    def _reset_utterance(self) -> None:
        self._active = False
        self._frames, self._verdicts = [], []
        self._speech_frames, self._silence_run = 0, 0
        self._pre.clear()
