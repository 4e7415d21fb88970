"""The contract between the speech pipeline and a recognition engine.

Every engine (Whisper on ONNX Runtime, sherpa-onnx offline/online, Vosk) is used the same
way, one utterance at a time, as the VAD delimits it:

    stream = engine.new_stream(start_s)   # start_s: where the utterance sits in the visit
    stream.accept(samples)          # any number of times, as the utterance grows
    stream.partial()                # a quick hypothesis of what was said so far
    stream.cancel()                 # (another thread) abandon a partial in progress
    result = stream.finish()        # the final text; the stream is then discarded
    engine.note_final(start_s, end_s, result)   # the stored text; engine.reset_context() at a new visit

Offline engines (Whisper) keep the samples and decode on partial()/finish(); streaming
engines (transducers, Vosk) decode as they accept. Samples are float32 mono 16 kHz.

Every engine implements every method (a no-op where it has nothing to do, see `NoVisitContext`),
and carries the `Abilities` its registration declares (appliance/asr/registry.py), so the
pipeline never guesses what an engine can do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from appliance.asr.registry import Abilities, engine_abilities


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

    def cancel(self) -> None:
        """Make a partial() running on another thread give up (raise Cancelled); else a no-op."""
        ...

    def finish(self) -> Recognition: ...


class Engine(Protocol):
    name: str  # e.g. "whisper-onnx:whisper-tiny.en"
    abilities: Abilities

    def new_stream(self, start_s: float | None = None) -> RecognizerStream: ...

    def reset_context(self) -> None:
        """A new visit begins: nothing of the last one may condition recognition."""
        ...

    def note_final(self, start_s: float, end_s: float, result: Recognition) -> None:
        """The text stored for the utterance at start_s-end_s of the visit."""
        ...


class NoVisitContext:
    """The visit-context methods of an engine whose utterances are recognised independently."""

    def reset_context(self) -> None:
        pass

    def note_final(self, start_s: float, end_s: float, result: Recognition) -> None:
        pass


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

    def cancel(self) -> None:
        pass

    def finish(self) -> Recognition:
        return Recognition(text="")


class NullTranscriber(NoVisitContext):
    """Stores utterance timing without text: the device before a model is installed.

    Segments get empty text; the panel and CLI say "speech (no recognizer installed)".
    """

    name = "none"
    abilities = engine_abilities("none")

    def new_stream(self, start_s: float | None = None) -> RecognizerStream:
        return _TimingOnlyStream()

    def transcribe(self, audio: np.ndarray) -> Recognition:
        return Recognition(text="")
