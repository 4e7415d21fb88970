"""Make appliance/data/demo_visit.flac: a short two-voice visit on a 4-mic array.

espeak-ng speaks each turn (clinician and patient with clearly different voices); each
talker is placed at its own direction around a ReSpeaker-style 4-mic circle (radius
32 mm) by fractional free-field delays, with a little room noise. Run it again to
regenerate the bundled file:  .venv/bin/python scripts/make_demo_recording.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

RATE = 16000
SPEED_OF_SOUND = 343.0
MIC_RADIUS = 0.0323
MIC_ANGLES = np.deg2rad([45, 135, 225, 315])

TURNS = [
    ("clinician", "Good morning. What brings you in today?"),
    ("patient", "I have had a sore throat and a mild fever for three days."),
    ("clinician", "Any cough or trouble swallowing?"),
    ("patient", "A dry cough, mostly at night. Swallowing hurts a little."),
    ("clinician", "Are you taking any medication, for example ibuprofen or amoxicillin?"),
    ("patient", "Only ibuprofen, four hundred milligrams twice a day."),
    ("clinician", "Let me take a look at your throat, then we will decide on a rapid strep test."),
]
VOICES = {"clinician": ("en-us", 150, 45.0), "patient": ("en+f3", 165, 210.0)}  # voice, wpm, azimuth


def speak(text: str, voice: str, wpm: int) -> np.ndarray:
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", f.name, text], check=True)
        audio, rate = sf.read(f.name, dtype="float32")
    return resample_poly(audio, RATE, rate).astype(np.float32)


def place(mono: np.ndarray, azimuth_deg: float) -> np.ndarray:
    """Far-field plane wave from azimuth: per-mic fractional delay in the frequency domain."""
    az = np.deg2rad(azimuth_deg)
    delays = -MIC_RADIUS * np.cos(MIC_ANGLES - az) / SPEED_OF_SOUND  # seconds, relative to centre
    n = mono.size + 64
    spec = np.fft.rfft(mono, n)
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    out = [np.fft.irfft(spec * np.exp(-2j * np.pi * freqs * (d + 0.002)), n) for d in delays]
    return np.stack(out, axis=1).astype(np.float32)


def main(out: str) -> None:
    rng = np.random.default_rng(7)
    pieces = [np.zeros((int(0.8 * RATE), 4), np.float32)]
    for who, text in TURNS:
        voice, wpm, az = VOICES[who]
        pieces.append(place(speak(text, voice, wpm) * 0.5, az))
        pieces.append(np.zeros((int(rng.uniform(0.7, 1.1) * RATE), 4), np.float32))
    audio = np.concatenate(pieces)
    audio += rng.normal(0, 10 ** (-58 / 20), audio.shape).astype(np.float32)  # quiet room noise
    sf.write(out, np.clip(audio, -1, 1), RATE, format="FLAC", subtype="PCM_16")
    print(f"wrote {out}: {audio.shape[0] / RATE:.1f} s, {audio.shape[1]} channels")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "appliance/data/demo_visit.flac")
