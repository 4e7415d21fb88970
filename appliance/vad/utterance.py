"""What a segmenter hands to speech recognition."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

RATE = 16000


@dataclass(frozen=True)
class Utterance:
    """One stretch of speech, its audio kept in RAM only until it is transcribed."""

    start: float  # seconds on the session's recorded timeline
    end: float
    audio: np.ndarray = field(repr=False)  # float32 mono 16 kHz
    split: bool = False  # cut at max length rather than at a pause: the speaker may go on

    @property
    def duration(self) -> float:
        return self.end - self.start


class Segmenter(Protocol):
    def feed(self, samples: np.ndarray, t: float) -> list[Utterance]:
        """Consume 16 kHz mono samples starting at time ``t``; return utterances that ended."""
        ...

    def flush(self) -> list[Utterance]:
        """End the utterance in flight (Stop, Pause, shutdown)."""
        ...

    def in_speech(self) -> bool:
        ...

    def pending_audio(self) -> np.ndarray:
        """Audio of the utterance in flight so far (for partial hypotheses)."""
        ...

    def pending_start(self) -> float | None:
        """Start time of the utterance in flight; None between utterances."""
        ...

    def trailing_silence_s(self) -> float:
        """How long the utterance in flight has been silent (0 while speaking or between utterances)."""
        ...

    def speech_end_samples(self) -> int:
        """Samples of the utterance in flight up to the end of its last speech frame."""
        ...

    def end_slack_samples(self) -> int:
        """Most samples an utterance can gain after its last speech frame (its trailing padding)."""
        ...
