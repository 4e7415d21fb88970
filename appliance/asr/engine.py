"""The contract between the speech pipeline and a recognition engine.

Every engine (Whisper on ONNX Runtime, sherpa-onnx offline/online, Vosk) is used the same
way, one utterance at a time, as the VAD delimits it:

    stream = engine.new_stream()
    stream.accept(samples)          # any number of times, as the utterance grows
    stream.partial()                # a quick hypothesis of what was said so far
    result = stream.finish()        # the final text; the stream is then discarded

Offline engines (Whisper) keep the samples and decode on partial()/finish(); streaming
engines (transducers, Vosk) decode as they accept. Samples are float32 mono 16 kHz.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Recognition:
    text: str
    no_speech: bool = False  # the engine judged the audio to hold no speech: store nothing
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    # One 0–1 confidence per word of `text` (split on whitespace), when the engine can tell.
    word_confidence: tuple[float, ...] | None = None
    # What decoding took beyond one pass ("seek", "fallback", "hallucination", "short",
    # "short-recovered"): counted in PipelineStats.asr_events, shown in the daemon's status.
    events: tuple[str, ...] = ()


class Cancelled(Exception):
    """A partial hypothesis was abandoned because a final text is waiting (see cancel())."""


class RecognizerStream(Protocol):
    def accept(self, samples: np.ndarray) -> None: ...

    def partial(self) -> str: ...

    def finish(self) -> Recognition: ...


class Engine(Protocol):
    name: str  # e.g. "whisper-onnx:whisper-tiny.en"

    def new_stream(self) -> RecognizerStream: ...


class Transcriber(Protocol):
    """Whole-utterance view of an engine (what the pipeline's worker calls)."""

    name: str

    def transcribe(self, audio: np.ndarray) -> Recognition: ...


def transcribe_with(engine: Engine, audio: np.ndarray) -> Recognition:
    stream = engine.new_stream()
    stream.accept(audio)
    return stream.finish()


class _TimingOnlyStream:
    def accept(self, samples: np.ndarray) -> None:
        pass

    def partial(self) -> str:
        return ""

    def finish(self) -> Recognition:
        return Recognition(text="")


class NullTranscriber:
    """Stores utterance timing without text: the device before a model is installed.

    Segments get empty text; the panel and CLI say "speech (no recognizer installed)".
    """

    name = "none"

    def new_stream(self) -> RecognizerStream:
        return _TimingOnlyStream()

    def transcribe(self, audio: np.ndarray) -> Recognition:
        return Recognition(text="")
