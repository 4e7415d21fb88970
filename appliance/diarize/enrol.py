"""Clinician enrolment: a voice print from ~20 s of the clinician speaking alone.

Only the voice print is kept (256 numbers, plus the clinician's name, the date and the
model that made it), as a small JSON file readable by the service user alone (0600).
The enrolment audio itself is never written anywhere; a voice print cannot be turned
back into speech.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

from appliance.diarize.embedder import FRAME, RATE, Embedder, pool, voiced_seconds

MIN_VOICED_S = 8.0  # less speech than this gives a voice print too unstable to trust
# The ~1 s windows split into their two most different groups: for one voice the groups'
# prints stay alike (0.64-0.82 measured: espeak-ng, Piper, two real readers, with noise down
# to 10 dB SNR); two voices interleaved sentence by sentence give 0.49-0.51.
SAME_VOICE_MIN = 0.62
MINOR_SHARE = 0.15  # a second voice in at least this share of the windows refuses the enrolment
# Speech less far above the room's background than this gives a noisy print. Measured with
# speech_to_background_db on read text (espeak-ng, Piper, a real reader; dry and RT60 0.3-0.6 s):
# white noise 20 dB below the speech reads 20.8-25.9 dB, 10 dB below 13.4-16.1 dB.
MIN_SNR_DB = 18.0
SILENT_DBFS = -50.0  # loudest frames below this: nothing was heard at all
FORMAT = 1


class EnrolmentError(Exception):
    """Enrolment refused; the message says what to do, in plain words."""


@dataclass(frozen=True)
class Enrolment:
    vector: np.ndarray
    clinician: str
    created: str
    model: str


def enrol(audio16k: np.ndarray, embedder: Embedder, *, min_voiced_s: float = MIN_VOICED_S) -> np.ndarray:
    """The clinician's voice print from ``audio16k`` (16 kHz mono); raises EnrolmentError if unusable.

    Refused, each with a sentence saying what to do: clipping, a noisy room, too little
    speech, and a second person talking in a sizeable part of the recording.
    """
    audio = np.asarray(audio16k, np.float32).reshape(-1)
    if np.mean(np.abs(audio) >= 0.99) > 0.001:
        raise EnrolmentError("The recording was too loud and distorted. Please speak a little further "
                             "from the device and try again.")
    loud_dbfs, snr_db = speech_to_background_db(audio)
    if loud_dbfs > SILENT_DBFS and snr_db < MIN_SNR_DB:
        raise EnrolmentError(f"The room was too noisy: the voice was only {snr_db:.0f} dB above the background "
                             f"noise (at least {MIN_SNR_DB:.0f} dB is needed). Please enrol in a quiet room, with "
                             "the door closed and fans off, close to the device.")
    voiced = voiced_seconds(audio)
    if voiced < min_voiced_s:
        raise EnrolmentError(
            f"Only {voiced:.0f} seconds of speech were heard; at least {min_voiced_s:.0f} are needed. "
            "Please read the text aloud for about 20 seconds, close to the device, in a quiet room.")
    _, windows = embedder.window_embeddings(audio)
    if not len(windows):
        raise EnrolmentError(f"The recording is too short ({audio.size / RATE:.0f} s). Please read for "
                             "about 20 seconds.")
    return pool(_one_voice(windows))


def speech_to_background_db(audio: np.ndarray) -> tuple[float, float]:
    """(level of the loud 20 ms frames in dBFS, how far above the quiet frames they are in dB).

    The 95th and 3rd percentiles of frame levels: a read text has short pauses between words
    and sentences, whose level is the room's background (the 10th percentile would still be
    speech or its reverberation when someone reads on without stopping).
    """
    n = audio.size // FRAME
    if n < 10:
        return -120.0, 0.0
    level = 10 * np.log10(np.mean(audio[:n * FRAME].reshape(n, FRAME).astype(np.float64) ** 2, axis=1) + 1e-12)
    loud, quiet = np.percentile(level, [95, 3])
    return float(loud), float(loud - quiet)


def _one_voice(windows: np.ndarray) -> np.ndarray:
    """The windows of the one person enrolling; raises if a second person speaks much.

    The ~1 s windows are split into their two most different groups (average linkage): if
    both are sizeable and sound like different people, the recording is refused; a small odd
    group (a cough, a word from someone at the door) is left out of the print instead.
    Windows, not longer chunks: sentences of two people alternating would put both voices
    into most chunks and hide the difference.
    """
    if len(windows) < 3:
        return windows
    ids = fcluster(linkage(windows, method="average", metric="cosine"), t=2, criterion="maxclust")
    groups = [np.flatnonzero(ids == c) for c in (1, 2)]
    if min(len(g) for g in groups) == 0:
        return windows
    a, b = (pool(windows[g]) for g in groups)
    if float(a @ b) >= SAME_VOICE_MIN:
        return windows
    minor = min(groups, key=len)
    if len(minor) >= max(2, MINOR_SHARE * len(windows)):
        raise EnrolmentError("More than one voice seems to be in the recording. Please enrol alone, "
                             "with nobody else talking, and try again.")
    keep = np.ones(len(windows), bool)
    keep[minor] = False
    return windows[keep]


def save_enrolment(path: Path | str, vector: np.ndarray, clinician: str, *, model: str = "") -> None:
    """Write the voice print (and name, date, model) as JSON, mode 0600, atomically."""
    v = np.asarray(vector, np.float64).reshape(-1)
    if not np.all(np.isfinite(v)) or v.size == 0:
        raise ValueError("voice print must be a non-empty vector of finite numbers")
    data = {"format": FORMAT, "clinician": clinician, "model": model,
            "created": datetime.now(UTC).replace(microsecond=0).isoformat(), "dim": int(v.size),
            "vector": [round(float(x), 7) for x in v]}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # even if a stale tmp file existed with wider permissions
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)


def load_enrolment(path: Path | str, *, model: str | None = None) -> Enrolment:
    """Read a saved voice print; raises EnrolmentError naming the problem.

    With ``model``, a print made by another embedding model (incomparable numbers) is refused.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        vector = np.asarray(data["vector"], np.float32)
        dim = int(data.get("dim", vector.size))
    except FileNotFoundError:
        raise EnrolmentError(f"No enrolment at {path}; the clinician has not enrolled yet.") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EnrolmentError(f"The enrolment at {path} is unreadable ({exc}); please enrol again.") from None
    norm = float(np.linalg.norm(vector)) if vector.ndim == 1 else math.nan
    if vector.ndim != 1 or vector.size != dim or not np.all(np.isfinite(vector)) or not norm > 0:
        raise EnrolmentError(f"The enrolment at {path} is damaged; please enrol again.")
    if model is not None and data.get("model") and data["model"] != model:
        raise EnrolmentError(f"The enrolment was made with the speaker model {data['model']!r}, this device now "
                             f"uses {model!r}; please enrol again.")
    return Enrolment(vector / norm, str(data.get("clinician", "")), str(data.get("created", "")),
                     str(data.get("model", "")))
