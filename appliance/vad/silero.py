"""Silero VAD (v5/v6 ONNX) on ONNX Runtime, with the energy segmenter's utterance rules.

A neural speech probability per 32 ms window instead of a level: fans, hiss and door
noise that trip an energy detector stay below threshold. The model is stateful: each call
takes 512 new samples prefixed by the previous window's last 64 (its context) and an LSTM
state tensor (2, 1, 128), and returns the probability plus the next state. One
InferenceSession is shared by all segmenters of a model file since the state lives here.

Hysteresis as in Silero's own utilities: speech starts at ``threshold`` and continues
while the probability stays above ``threshold - 0.15``. Utterances end after
``min_silence_ms`` below that, are dropped when shorter than ``min_speech_ms``, get
``pad_ms`` of audio either side and are split at the least speech-like window of their
last third when they reach ``max_utterance_s``: the quietest window the model calls
non-speech, or if it calls them all speech, the quietest window. In running speech Silero
stays near 1.0 through the gaps between words and its small dips fall mid-word (measured:
lowest 0.67 at -31 dBFS inside a word while a silent gap scored 0.985), so within speech
the level, not the probability, finds the gap between two words.
"""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path

import numpy as np

from appliance.config.schema import VadConfig
from appliance.models.manifest import ModelError, load_manifest, resolve_model
from appliance.vad.utterance import RATE, Utterance

MODEL_NAME = "silero-vad"
WINDOW = 512  # samples per model call at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous window the model sees again
FRAME_S = WINDOW / RATE
HYSTERESIS = 0.15

_sessions: dict[str, object] = {}
_sessions_lock = threading.Lock()


def _session(path: Path):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    key = str(path.resolve())
    with _sessions_lock:
        if key not in _sessions:
            so = ort.SessionOptions()
            so.intra_op_num_threads = 1  # a 32 ms window is far too small to gain from threads
            so.inter_op_num_threads = 1
            so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            so.log_severity_level = 3
            _sessions[key] = ort.InferenceSession(key, so, providers=["CPUExecutionProvider"])
        return _sessions[key]


class SileroModel:
    """Speech probability of consecutive 512-sample windows of one 16 kHz stream."""

    def __init__(self, onnx_path: Path | str) -> None:
        self.path = Path(onnx_path)
        self._sess = _session(self.path)
        inputs = {i.name: i for i in self._sess.get_inputs()}  # type: ignore[attr-defined]
        if set(inputs) != {"input", "state", "sr"}:
            raise ModelError(MODEL_NAME, f"not a Silero v5/v6 model: inputs {sorted(inputs)}", self.path.name)
        dims = inputs["state"].shape
        self._state_shape = (int(dims[0]), 1, int(dims[2]))  # (2, batch, 128)
        self._sr = np.array(RATE, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        """Start a new stream (after a pause, the audio is not continuous)."""
        self._state = np.zeros(self._state_shape, np.float32)
        self._x = np.zeros((1, CONTEXT + WINDOW), np.float32)

    def __call__(self, window: np.ndarray) -> float:
        x = self._x
        x[0, :CONTEXT] = x[0, WINDOW:]  # the previous window's tail becomes the context
        x[0, CONTEXT:] = window
        out, self._state = self._sess.run(None, {"input": x, "state": self._state, "sr": self._sr})  # type: ignore[attr-defined]
        return float(out[0, 0])


def model_path(models_dir: Path | str) -> Path:
    """The verified silero_vad.onnx of the installed `silero-vad` model (full sha256 check)."""
    try:
        model_dir = resolve_model(models_dir, MODEL_NAME)
    except ModelError as exc:
        raise ModelError(MODEL_NAME, f"{exc.problem} (or set vad.engine = \"energy\")") from None
    manifest = load_manifest(model_dir, fresh=True)
    if manifest.engine != "silero-vad":
        raise ModelError(MODEL_NAME, f"engine is {manifest.engine!r}, expected 'silero-vad'", "manifest.json")
    return manifest.file(str(manifest.get("model", "silero_vad.onnx")))


class SileroSegmenter:
    def __init__(self, cfg: VadConfig, model: SileroModel | Path | str) -> None:
        self.cfg = cfg
        self.model = model if isinstance(model, SileroModel) else SileroModel(model)
        self._on = cfg.threshold
        self._off = max(cfg.threshold - HYSTERESIS, 0.01)
        ms = FRAME_S * 1000
        self._min_speech = max(1, round(cfg.min_speech_ms / ms))
        self._min_silence = max(1, round(cfg.min_silence_ms / ms))
        self._max_frames = int(cfg.max_utterance_s / FRAME_S)
        self._pad = round(cfg.pad_ms / ms)
        self._carry = np.zeros(0, np.float32)  # samples short of a whole window
        self._carry_t = 0.0
        self._pre: deque[np.ndarray] = deque(maxlen=max(self._pad, 1))  # bounded pre-roll
        self._frames: list[np.ndarray] = []  # utterance in flight, bounded by the cap
        self._probs: list[float] = []
        self._levels: list[float] = []  # energy per window, to find the gap between words at a split
        self._start = 0.0
        self._speech_frames = 0
        self._silence_run = 0
        self._active = False

    @classmethod
    def from_models_dir(cls, cfg: VadConfig, models_dir: Path | str) -> SileroSegmenter:
        return cls(cfg, model_path(models_dir))

    # -- public (the Segmenter contract) ---------------------------------------------
    def feed(self, samples: np.ndarray, t: float) -> list[Utterance]:
        out: list[Utterance] = []
        if self._carry.size == 0:
            self._carry_t = t
        buf = np.concatenate([self._carry, samples.astype(np.float32, copy=False)])
        n = buf.size // WINDOW
        for i in range(n):
            out.extend(self._frame(buf[i * WINDOW:(i + 1) * WINDOW], self._carry_t + i * FRAME_S))
        self._carry = buf[n * WINDOW:].copy()
        self._carry_t += n * FRAME_S
        return out

    def flush(self) -> list[Utterance]:
        out = self._finish(trailing=self._silence_run) if self._active else []
        self._carry = np.zeros(0, np.float32)
        self._pre.clear()
        self.model.reset()
        return out

    def in_speech(self) -> bool:
        return self._active

    def pending_audio(self) -> np.ndarray:
        return np.concatenate(self._frames) if self._frames else np.zeros(0, np.float32)

    def pending_start(self) -> float | None:
        return self._start if self._active else None

    # -- window logic -----------------------------------------------------------------
    def _frame(self, frame: np.ndarray, t: float) -> list[Utterance]:
        p = self.model(frame)
        level = float(np.dot(frame, frame))
        if not self._active:
            if p >= self._on:
                self._active = True
                pre = list(self._pre) if self._pad else []
                self._frames = [*pre, frame]
                self._probs = [0.0] * len(pre) + [p]
                self._levels = [0.0] * len(pre) + [level]
                self._start = t - len(pre) * FRAME_S
                self._speech_frames, self._silence_run = 1, 0
            elif self._pad:
                self._pre.append(frame)
            return []
        self._frames.append(frame)
        self._probs.append(p)
        self._levels.append(level)
        if p >= self._off:
            self._speech_frames += 1
            self._silence_run = 0
        else:
            self._silence_run += 1
        if self._silence_run >= self._min_silence:
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
        # Cut after the least speech-like window of the last third (see the module docstring).
        lo = len(self._frames) * 2 // 3
        probs, levels = np.asarray(self._probs[lo:]), np.asarray(self._levels[lo:])
        pauses = probs < self._off
        cut = lo + int(np.argmin(np.where(pauses, levels, np.inf) if pauses.any() else levels)) + 1
        head = self._emit(self._frames[:cut], self._start, split=True)
        self._start += cut * FRAME_S
        self._frames, self._probs, self._levels = self._frames[cut:], self._probs[cut:], self._levels[cut:]
        self._speech_frames = sum(1 for p in self._probs if p >= self._off)
        return [head]

    def _reset_utterance(self) -> None:
        self._active = False
        self._frames, self._probs, self._levels = [], [], []
        self._speech_frames, self._silence_run = 0, 0
        self._pre.clear()
