"""Benchmark audio with reference transcripts.

- Real human read speech: Debian's pocketsphinx-testdata (LibriVox "Sense and
  Sensibility" sentences; spoken card names).
- Synthetic clinical visits: ACI-Bench dialogues from ../shared/data (when present),
  spoken turn by turn by two espeak-ng voices.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

PSPHINX = Path("/usr/share/pocketsphinx/test/data")
# ../shared/data beside the main checkout; a git worktree elsewhere names it with EXAM_SCRIBE_SHARED_DATA
SHARED = Path(os.environ.get("EXAM_SCRIBE_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
RATE = 16000


@dataclass(frozen=True)
class Clip:
    path: Path
    reference: str


@dataclass(frozen=True)
class Dataset:
    name: str
    kind: str
    clips: list[Clip]

    @property
    def seconds(self) -> float:
        return sum(sf.info(c.path).duration for c in self.clips)


def _transcription(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"\s*(.*?)\s*\((\S+)\)\s*$", line)
        if m:
            out[m.group(2)] = re.sub(r"</?s>", "", m.group(1)).strip()
    return out


def pocketsphinx_sets() -> list[Dataset]:
    if not PSPHINX.is_dir():
        print(f"(pocketsphinx-testdata not installed: {PSPHINX} missing; apt-get install pocketsphinx-testdata)")
        return []
    sets = []
    for folder, name, kind in (("librivox", "librivox (read speech)", "real human"),
                               ("cards", "cards (short commands)", "real human")):
        refs = _transcription(PSPHINX / folder / ("transcription" if folder == "librivox" else "cards.transcription"))
        clips = [Clip(p, refs[p.stem]) for p in sorted((PSPHINX / folder).glob("*.wav")) if p.stem in refs]
        sets.append(Dataset(name, kind, clips))
    return sets


def espeak(text: str, voice: str, wpm: int = 165, gain: float = 0.6) -> np.ndarray:
    """float32 16 kHz speech of ``text`` by espeak-ng."""
    raw = subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "--stdout", text], check=True,
                         capture_output=True).stdout
    audio = np.frombuffer(raw[44:], "<i2").astype(np.float32) / 32768  # espeak's WAV header is 44 bytes
    return resample_poly(audio, RATE, 22050).astype(np.float32) * gain


def _clean_turn(text: str) -> str:
    text = re.sub(r"\s+([,.?!])", r"\1", text).replace(" n't", "n't").replace(" 's", "'s")
    return text.strip()


def clinical_dialogues(out_dir: Path, n: int = 3, max_turns: int = 14) -> list[Dataset]:
    src = SHARED / "aci-bench" / "valid.csv"
    if not src.exists():
        print(f"(clinical dialogues skipped: {src} not present on this machine)")
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    clips = []
    rows = list(csv.DictReader(src.open()))[:n]
    for row in rows:
        wav = out_dir / f"{row['encounter_id']}.wav"
        ref = []
        pieces = [np.zeros(RATE // 2, np.float32)]
        for line in row["dialogue"].splitlines()[:max_turns]:
            m = re.match(r"\[(doctor|patient)\]\s*(.*)", line)
            if not m or not m.group(2).strip():
                continue
            text = _clean_turn(m.group(2))
            ref.append(text)
            pieces += [espeak(text, "en-us" if m.group(1) == "doctor" else "en+f3"),
                       np.zeros(int(RATE * 0.8), np.float32)]
        if not wav.exists():
            sf.write(wav, np.concatenate(pieces), RATE, subtype="PCM_16")
        clips.append(Clip(wav, " ".join(ref)))
    return [Dataset("ACI-Bench visits (espeak-ng)", "synthetic", clips)]
