"""The stream of an offline engine (Whisper, Moonshine): one utterance's samples kept in RAM and
decoded whole on partial() (a short token budget, cancellable) and finish()."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import onnxruntime as ort

from appliance.asr.engine import Recognition

PARTIAL_TOKENS = 32  # token budget of a partial hypothesis


class Recognizer(Protocol):
    def recognize(self, audio: np.ndarray, max_tokens: int | None = None,
                  run_options: ort.RunOptions | None = None, *, start_s: float | None = None) -> Recognition: ...


class BufferedStream:
    def __init__(self, engine: Recognizer, start_s: float | None = None) -> None:
        self._engine = engine
        self._chunks: list[np.ndarray] = []
        self._samples = 0
        self._last_partial: tuple[int, str] = (-1, "")
        self._partial_run: ort.RunOptions | None = None  # the partial decode in progress, for cancel()
        self.start_s = start_s  # where the utterance starts in the visit (new_stream's start_s)

    def accept(self, samples: np.ndarray) -> None:
        chunk = np.array(samples, dtype=np.float32, copy=True).reshape(-1)
        self._chunks.append(chunk)
        self._samples += chunk.size

    def _audio(self) -> np.ndarray:
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)

    def partial(self) -> str:
        if self._last_partial[0] != self._samples:  # no new audio: no new decode
            self._partial_run = ort.RunOptions()
            try:
                r = self._engine.recognize(self._audio(), max_tokens=PARTIAL_TOKENS, run_options=self._partial_run,
                                           start_s=self.start_s)
            finally:
                self._partial_run = None
            self._last_partial = (self._samples, "" if r.no_speech else r.text)
        return self._last_partial[1]

    def cancel(self) -> None:
        """Abandon the partial decode in progress (a final is waiting); finish() is never cancelled."""
        run = self._partial_run
        if run is not None:
            run.terminate = True

    def finish(self) -> Recognition:
        audio = self._audio()
        self._chunks.clear()
        self._samples = 0
        return self._engine.recognize(audio, start_s=self.start_s)
