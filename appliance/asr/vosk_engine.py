"""Vosk (Kaldi) streaming recognition: the low-memory alternative to the neural engines.

One `vosk.Model` per engine (loading takes seconds), one `KaldiRecognizer` per utterance.
Kaldi decodes as samples arrive, so partial() is cheap.

Vocabulary is ignored: Vosk can restrict small models to a fixed grammar (a word list),
which would make every word outside the list unrecognisable; it has no way to bias towards
terms while keeping the open vocabulary, and that is what clinic terms need.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from appliance.asr.engine import NoVisitContext, Recognition
from appliance.asr.registry import engine_abilities
from appliance.config.schema import AsrConfig

log = logging.getLogger(__name__)

RATE = 16000


def to_pcm16(samples: np.ndarray) -> bytes:
    """float32 in [-1, 1] → little-endian int16 bytes, what KaldiRecognizer takes."""
    x = np.clip(np.asarray(samples, dtype=np.float32).reshape(-1), -1.0, 1.0)
    return (x * 32767.0).astype("<i2").tobytes()


class VoskStream:
    """One utterance. Kaldi may end a segment by itself (its own endpointing) in a long
    utterance; those segments are kept so nothing said before the endpoint is lost."""

    def __init__(self, recognizer: Any) -> None:  # a vosk.KaldiRecognizer (vosk is untyped)
        self._rec = recognizer
        self._done: list[str] = []  # text of segments Kaldi already closed
        self._finished = False

    def accept(self, samples: np.ndarray) -> None:
        if self._finished:
            raise RuntimeError("accept() after finish(): start a new stream for the next utterance")
        if samples.size == 0:
            return
        if self._rec.AcceptWaveform(to_pcm16(samples)):
            self._keep(self._rec.Result())

    def partial(self) -> str:
        if self._finished:
            return self._joined([])
        current = json.loads(self._rec.PartialResult()).get("partial", "")
        return self._joined([current])

    def cancel(self) -> None:
        pass  # partial() only reads Kaldi's running result: nothing to abandon

    def finish(self) -> Recognition:
        if not self._finished:
            self._keep(self._rec.FinalResult())
            self._finished = True
        text = self._joined([])
        return Recognition(text=text, no_speech=not text)

    def _keep(self, result_json: str) -> None:
        text = json.loads(result_json).get("text", "").strip()
        if text:
            self._done.append(text)

    def _joined(self, extra: list[str]) -> str:
        return " ".join(t for t in [*self._done, *extra] if t.strip()).strip()


@lru_cache(maxsize=2)
def _load_model(path: str) -> object:
    """One Model per directory per process: loading takes seconds and the model is read-only,
    so a restarted recognition component (or a second engine) shares it."""
    import vosk

    vosk.SetLogLevel(-1)  # Kaldi logs every decoder setting to stderr otherwise
    return vosk.Model(path)


class VoskEngine(NoVisitContext):
    abilities = engine_abilities("vosk")

    def __init__(self, model_dir: Path | str, cfg: AsrConfig) -> None:
        try:
            import vosk
        except ImportError as e:  # the engine is optional on a device
            raise RuntimeError("asr.engine = \"vosk\" needs the Python package vosk (pip install vosk)") from e
        model_dir = Path(model_dir)
        if not (model_dir / "am").is_dir() or not (model_dir / "conf").is_dir():
            raise FileNotFoundError(f"{model_dir} is not a Vosk model directory (it needs am/ and conf/)")
        self._vosk = vosk
        self.model = _load_model(str(model_dir.resolve()))
        self.name = f"vosk:{model_dir.name if model_dir.name != 'model' else model_dir.parent.name}"
        if cfg.vocabulary or cfg.vocabulary_file:
            log.info("vosk ignores asr.vocabulary: it supports only fixed grammars, not biasing")

    def new_stream(self, start_s: float | None = None) -> VoskStream:
        return VoskStream(self._vosk.KaldiRecognizer(self.model, RATE))
