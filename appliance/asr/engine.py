"""The contract between the speech pipeline and a recognition engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Recognition:
    text: str
    no_speech: bool = False  # the engine judged the audio to hold no speech


class Transcriber(Protocol):
    name: str

    def transcribe(self, audio: np.ndarray) -> Recognition:
        """Final text of one utterance (float32 mono 16 kHz)."""
        ...


class NullTranscriber:
    """Stores utterance timing without text: the device before a model is installed.

    Segments get empty text; the panel and CLI say "speech (no recognizer installed)".
    """

    name = "none"

    def transcribe(self, audio: np.ndarray) -> Recognition:
        return Recognition(text="")
