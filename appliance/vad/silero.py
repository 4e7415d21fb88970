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
from pathlib import Path
from typing import Any

import numpy as np

from appliance.config.schema import VadConfig
from appliance.models.manifest import ModelError, load_manifest, resolve_model
from appliance.vad.framing import FrameSegmenter, FrameVerdict
from appliance.vad.utterance import RATE

MODEL_NAME = "silero-vad"
WINDOW = 512  # samples per model call at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous window the model sees again
HYSTERESIS = 0.15

_sessions: dict[str, object] = {}
_sessions_lock = threading.Lock()


def _session(path: Path) -> Any:  # an onnxruntime.InferenceSession (the library is untyped)
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
        inputs = {i.name: i for i in self._sess.get_inputs()}
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
        out, self._state = self._sess.run(None, {"input": x, "state": self._state, "sr": self._sr})
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


class SileroSegmenter(FrameSegmenter):
    def __init__(self, cfg: VadConfig, model: SileroModel | Path | str) -> None:
        super().__init__(cfg, WINDOW)
        self.model = model if isinstance(model, SileroModel) else SileroModel(model)
        self._on = cfg.threshold
        self._off = max(cfg.threshold - HYSTERESIS, 0.01)

    @classmethod
    def from_models_dir(cls, cfg: VadConfig, models_dir: Path | str) -> SileroSegmenter:
        return cls(cfg, model_path(models_dir))

    def classify(self, frame: np.ndarray) -> FrameVerdict:
        p = self.model(frame)
        return FrameVerdict(starts=p >= self._on, continues=p >= self._off, level=float(np.dot(frame, frame)))

    def split_cut(self, verdicts: list[FrameVerdict]) -> int:
        # The quietest window the model calls a pause; if it calls them all speech, the
        # quietest window (see the module docstring).
        levels = np.array([v.level for v in verdicts])
        pauses = np.array([not v.continues for v in verdicts])
        return int(np.argmin(np.where(pauses, levels, np.inf) if pauses.any() else levels))

    def reset_stream(self) -> None:
        self.model.reset()
