"""Simulated exam rooms: talkers at distinct places around a ReSpeaker 4-mic array on the desk.

A room is a ShoeBox of about 3.5 x 4 x 2.7 m (pyroomacoustics image sources, absorption
from the wanted RT60 by Sabine's formula), the array's four microphones at their real
positions (`appliance.hardware.arrays`), each talker at their own seat, uncorrelated
microphone noise at 20-30 dB SNR. The talkers speak a dialogue turn by turn with short
gaps, some turns cutting in before the previous one ends (overlapping speech).

The recording is written as the array's 6-channel firmware delivers it: ch0 the processed
channel (here the mean of the four microphones), ch1-4 the raw microphones, ch5 playback
(silent). The clinician's enrolment (~20 s of other sentences, close to the device) is
simulated in the same room.

Dialogue text: ACI-Bench (../shared/data) when present — `valid` for the reported rooms,
`train` for development — else the bundled dialogues below.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import fftconvolve

from appliance.hardware.arrays import RESPEAKER_USB_4MIC_V2
from benchmarks.datasets import SHARED
from benchmarks.voices import RATE, VOICES, Voice, real_recordings, speak

ENROL_TEXT = [
    "When the sunlight strikes raindrops in the air, they act as a prism and form a rainbow.",
    "The rainbow is a division of white light into many beautiful colours.",
    "These take the shape of a long round arch, with its path high above, and its two ends apparently "
    "beyond the horizon.",
    "There is, according to legend, a boiling pot of gold at one end.",
    "People look, but no one ever finds it. When a man looks for something beyond his reach, "
    "his friends say he is looking for the pot of gold at the end of the rainbow.",
]

BUNDLED = [
    [("doctor", "Good morning, what brings you in today?"),
     ("patient", "I've had a cough for about two weeks and it isn't getting better."),
     ("doctor", "Is it a dry cough, or are you bringing anything up?"),
     ("patient", "Mostly dry, but in the mornings there is some yellow phlegm."),
     ("doctor", "Any fever, chills or night sweats?"),
     ("patient", "A low fever the first few days, nothing since then."),
     ("doctor", "Do you smoke, or did you ever smoke?"),
     ("patient", "I quit about five years ago."),
     ("doctor", "Okay. I'm going to listen to your lungs now. Take a deep breath in."),
     ("patient", "Like this?"),
     ("doctor", "Yes, and out. Again please. Your lungs sound clear, which is reassuring."),
     ("patient", "That's good to hear. Should I be taking anything for it?"),
     ("doctor", "I'd suggest honey and warm fluids, and come back if it lasts another two weeks."),
     ("patient", "All right, thank you doctor."),
     ("doctor", "You're welcome. The nurse will give you a leaflet on the way out.")],
    [("doctor", "Hello, how has your blood pressure been since we changed the medication?"),
     ("patient", "Better I think. The readings at home are around one thirty over eighty."),
     ("doctor", "That's a good improvement. Any dizziness when you stand up?"),
     ("patient", "Only once or twice, in the morning."),
     ("doctor", "Are you taking the tablet in the morning or in the evening?"),
     ("patient", "In the morning with breakfast."),
     ("doctor", "Try taking it in the evening instead, that often helps with the dizziness."),
     ("patient", "Okay, I can do that."),
     ("doctor", "How about your ankles, any swelling?"),
     ("patient", "A little at the end of the day, but it goes down overnight."),
     ("doctor", "Let me have a look. Mild swelling, nothing to worry about for now."),
     ("patient", "Do I need more blood tests?"),
     ("doctor", "Yes, kidney function and potassium, in about four weeks."),
     ("patient", "Fine. Can I book that at the front desk?"),
     ("doctor", "Yes, they'll sort it out for you.")],
]


@dataclass(frozen=True)
class RefTurn:
    speaker: str  # "clinician" | "patient" | "companion"
    start: float
    end: float
    text: str


@dataclass
class Room:
    name: str
    voices: dict[str, Voice]
    turns: list[RefTurn]
    path: Path
    duration: float
    rt60: float
    snr_db: float
    azimuth: dict[str, float]  # true direction of each talker from the array, degrees
    enrolment: np.ndarray = field(repr=False)  # 16 kHz mono, what the device heard at enrolment


@dataclass(frozen=True)
class RoomSpec:
    name: str
    voices: tuple[str, ...]  # clinician, patient[, companion]
    dialogue: int  # index into the dialogue list
    seed: int


def _aci_bench() -> Path:
    """ACI-Bench in ../shared/data beside the checkout, or beside a parent (a git worktree)."""
    here = Path(__file__).resolve()
    for d in (SHARED, *(p / "shared" / "data" for p in here.parents)):
        if (d / "aci-bench").is_dir():
            return d / "aci-bench"
    return SHARED / "aci-bench"


def dialogues(split: str) -> list[list[tuple[str, str]]]:
    """(role, text) turns of each dialogue; ACI-Bench `split` if present, else the bundled ones
    (dev and test each get their own half of them, so the splits still share no dialogue)."""
    src = _aci_bench() / f"{split}.csv"
    if not src.exists():
        own = BUNDLED[0::2] if split == "train" else BUNDLED[1::2]
        print(f"(ACI-Bench not present at {src}: using {len(own)} of the bundled dialogues)")
        return own
    out = []
    for row in csv.DictReader(src.open()):
        turns = []
        for line in row["dialogue"].splitlines():
            m = re.match(r"\[(doctor|patient|patient_guest)\]\s*(.*)", line)
            if m and m.group(2).strip():
                turns.append((m.group(1), _clean(m.group(2))))
        out.append(turns)
    return out


def _clean(text: str, max_words: int = 30) -> str:
    text = re.sub(r"\s+([,.?!])", r"\1", text).replace(" n't", "n't").replace(" 's", "'s").strip()
    words = text.split()
    if len(words) <= max_words:
        return text
    cut = " ".join(words[:max_words])  # long monologues: keep whole sentences up to the cap
    end = max(cut.rfind("."), cut.rfind("?"), cut.rfind("!"))
    return cut[:end + 1] if end > len(cut) // 3 else cut + "."


def _script(spec: RoomSpec, dialogue: list[tuple[str, str]], max_turns: int,
            rng: np.random.Generator) -> list[tuple[str, np.ndarray, str]]:
    """(role, audio, reference text) per turn. A real person speaks their own recordings, in
    order, and the dialogue ends when they run out; a companion takes some patient turns."""
    roles = ["clinician", "patient", "companion"][:len(spec.voices)]
    voice = {r: VOICES[v] for r, v in zip(roles, spec.voices, strict=True)}
    real_left = {r: list(real_recordings(v)) for r, v in voice.items() if v.real}
    out: list[tuple[str, np.ndarray, str]] = []
    patient_turns = 0
    for tag, text in dialogue:
        if len(out) >= max_turns:
            break
        role = "clinician" if tag == "doctor" else "patient"
        if role == "patient" and "companion" in voice:
            patient_turns += 1
            if tag == "patient_guest" or patient_turns % 3 == 0:
                role = "companion"
        if voice[role].real:
            if not real_left[role]:
                break
            audio, text = real_left[role].pop(0)
        else:
            audio = speak(voice[role], text)
        if audio.size < 0.2 * RATE:
            continue
        out.append((role, audio * float(10 ** (rng.uniform(-3, 3) / 20)), text))
    return out


def _seats(rng: np.random.Generator, n: int) -> list[tuple[float, float, float]]:
    """(azimuth deg, distance m, height m) per talker, at least 70 degrees apart."""
    while True:
        az = rng.uniform(0, 360, n)
        gaps = [abs((a - b + 180) % 360 - 180) for i, a in enumerate(az) for b in az[i + 1:]]
        if not gaps or min(gaps) >= 70:
            break
    return [(float(a), float(rng.uniform(0.8, 1.5)), float(rng.uniform(1.1, 1.3))) for a in az]


def build(spec: RoomSpec, split: str, out_dir: Path, *, max_turns: int = 14, overlap_every: int = 5) -> Room:
    import pyroomacoustics as pra

    rng = np.random.default_rng(spec.seed)
    texts = dialogues(split)
    script = _script(spec, texts[spec.dialogue % len(texts)], max_turns, rng)
    roles = ["clinician", "patient", "companion"][:len(spec.voices)]

    # Timeline: 0.3-0.9 s gaps; every `overlap_every`-th change of talker cuts in 0.4-0.9 s early.
    turns: list[RefTurn] = []
    placed: list[tuple[str, np.ndarray, float]] = []
    t = 0.8
    for k, (role, audio, text) in enumerate(script):
        if turns:
            prev = turns[-1]
            if k % overlap_every == overlap_every - 1 and prev.speaker != role:
                t = max(prev.start + 0.5 * (prev.end - prev.start), prev.end - rng.uniform(0.4, 0.9))
            else:
                t = prev.end + rng.uniform(0.3, 0.9)
        turns.append(RefTurn(role, round(t, 3), round(t + audio.size / RATE, 3), text))
        placed.append((role, audio, t))
    duration = turns[-1].end + 1.0
    n = int(duration * RATE)

    dims = np.array([3.5, 4.0, 2.7]) + rng.uniform(-0.2, 0.2, 3)
    rt60 = float(rng.uniform(0.3, 0.6))
    absorption, max_order = pra.inverse_sabine(rt60, dims)
    room = pra.ShoeBox(dims, fs=RATE, materials=pra.Material(absorption), max_order=max_order)
    centre = np.array([dims[0] * 0.45, dims[1] * 0.5, 0.9])  # on the desk, near the middle
    mics = np.asarray(RESPEAKER_USB_4MIC_V2.positions_m).T + centre[:, None]
    room.add_microphone_array(mics)
    seats = _seats(rng, len(roles))
    azimuth = {}
    for role, (az, dist, height) in zip(roles, seats, strict=True):
        pos = centre[:2] + dist * np.array([np.cos(np.radians(az)), np.sin(np.radians(az))])
        pos = np.clip(pos, 0.3, dims[:2] - 0.3)
        delta = pos - centre[:2]
        azimuth[role] = float(np.degrees(np.arctan2(delta[1], delta[0])) % 360)
        room.add_source([*pos, height])
    clin = np.radians(azimuth["clinician"])
    room.add_source([*(centre[:2] + 0.5 * np.array([np.cos(clin), np.sin(clin)])), 1.3])  # enrolment: close
    room.compute_rir()

    mixed = np.zeros((4, n + 2 * RATE))
    for s, role in enumerate(roles):
        track = np.zeros(n)
        for r, audio, start in placed:
            if r == role:
                i = int(start * RATE)
                track[i:i + audio.size] += audio
        for m in range(4):
            wet = fftconvolve(track, room.rir[m][s])
            mixed[m, :wet.size] += wet[:mixed.shape[1]]
    mixed = mixed[:, :n]
    snr_db = float(rng.uniform(20, 30))
    active = np.zeros(n, bool)
    for turn in turns:
        active[int(turn.start * RATE):int(turn.end * RATE)] = True
    speech_power = float(np.mean(mixed[:, active] ** 2))
    mixed += rng.normal(0, np.sqrt(speech_power / 10 ** (snr_db / 10)), mixed.shape)
    gain = 0.5 / max(float(np.max(np.abs(mixed))), 1e-9)

    raw = np.zeros((n, RESPEAKER_USB_4MIC_V2.channels), np.float32)
    raw[:, list(RESPEAKER_USB_4MIC_V2.raw_channels)] = (mixed * gain).T
    raw[:, 0] = raw[:, 1:5].mean(axis=1)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{spec.name}.wav"
    sf.write(path, raw, RATE, subtype="PCM_16")

    enrol_speech = np.concatenate([speak(VOICES[spec.voices[0]], s) for s in ENROL_TEXT]) \
        if not VOICES[spec.voices[0]].real else np.zeros(0)
    enrol_mics = np.stack([fftconvolve(enrol_speech, room.rir[m][len(roles)])[:enrol_speech.size] for m in range(4)])
    enrol = enrol_mics.mean(axis=0)
    enrol += rng.normal(0, np.sqrt(np.mean(enrol ** 2) / 10 ** (snr_db / 10)), enrol.size)
    enrol = (enrol * 0.3 / max(float(np.max(np.abs(enrol))), 1e-9)).astype(np.float32)
    return Room(spec.name, {r: VOICES[v] for r, v in zip(roles, spec.voices, strict=True)}, turns, path,
                n / RATE, rt60, snr_db, azimuth, enrol)


# Dev and test rooms share nothing: voices (benchmarks.voices: DEV_VOICES / TEST_VOICES),
# dialogues (ACI-Bench train / valid) and rooms (seeds: size, RT60, noise, seats).
TWO = {"dev": [("piper", "espeak-f3"), ("espeak-f3", "piper"), ("espeak-m", "espeak-f3"), ("piper", "librivox"),
               ("espeak-f3", "cards"), ("espeak-f3", "espeak-f2")],
       "test": [("espeak-f1", "espeak-Michael"), ("espeak-Alicia", "espeak-klatt"), ("espeak-Storm", "espeak-anika"),
                ("espeak-Andrea", "espeak-Lee"), ("espeak-Michael", "espeak-Alicia"),
                ("espeak-klatt", "espeak-Andrea")]}
THREE = {"dev": [("piper", "espeak-f3", "librivox"), ("espeak-f3", "piper", "espeak-m")],
         "test": [("espeak-anika", "espeak-Lee", "espeak-f1"), ("espeak-Storm", "espeak-Andrea", "espeak-klatt")]}
SEED_BASE = {"dev": 100, "test": 0}


def split_voices(split: str) -> set[str]:
    return {v for group in (TWO[split], THREE[split]) for spec in group for v in spec}


def room_specs(split: str, quick: bool) -> list[RoomSpec]:
    base, two_all, three_all = SEED_BASE[split], TWO[split], THREE[split]
    two = two_all[:2] + two_all[3:4] if quick else two_all
    three = three_all[:1] if quick else three_all
    specs = [RoomSpec(f"{split}-2spk-{i + 1}-{'-'.join(v)}", v, i, base + i) for i, v in enumerate(two)]
    specs += [RoomSpec(f"{split}-3spk-{i + 1}-{'-'.join(v)}", v, len(two_all) + i, base + 50 + i)
              for i, v in enumerate(three)]
    return specs
