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

from appliance.diarize.embedder import RATE, Embedder, pool, voiced_seconds

MIN_VOICED_S = 8.0  # less speech than this gives a voice print too unstable to trust
SAME_VOICE_MIN = 0.6  # two groups of an enrolment less alike than this are two people
CHUNK_WINDOWS = 3  # ~2.5 s of speech per chunk when looking for a second voice
MINOR_SHARE = 0.2  # a second voice in at least this share of the chunks refuses the enrolment
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
    """The clinician's voice print from ``audio16k`` (16 kHz mono); raises EnrolmentError if unusable."""
    audio = np.asarray(audio16k, np.float32).reshape(-1)
    voiced = voiced_seconds(audio)
    if voiced < min_voiced_s:
        raise EnrolmentError(
            f"Only {voiced:.0f} seconds of speech were heard; at least {min_voiced_s:.0f} are needed. "
            "Please read the text aloud for about 20 seconds, close to the device, in a quiet room.")
    if np.mean(np.abs(audio) >= 0.99) > 0.001:
        raise EnrolmentError("The recording was too loud and distorted. Please speak a little further "
                             "from the device and try again.")
    _, windows = embedder.window_embeddings(audio)
    if not len(windows):
        raise EnrolmentError(f"The recording is too short ({audio.size / RATE:.0f} s). Please read for "
                             "about 20 seconds.")
    return pool(_one_voice(windows))


def _one_voice(windows: np.ndarray) -> np.ndarray:
    """The windows of the one person enrolling; raises if a second person speaks much.

    ~2.5 s chunks are split into the two most different groups: if both are sizeable and
    sound like different people, the recording is refused; a small odd group (a cough, a
    word from someone at the door) is left out of the print instead.
    """
    chunks = [pool(windows[i:i + CHUNK_WINDOWS]) for i in range(0, len(windows), CHUNK_WINDOWS)]
    if len(chunks) < 3:
        return windows
    ids = fcluster(linkage(np.stack(chunks), method="average", metric="cosine"), t=2, criterion="maxclust")
    groups = [np.flatnonzero(ids == c) for c in (1, 2)]
    if min(len(g) for g in groups) == 0:
        return windows
    a, b = (pool(np.stack([chunks[i] for i in g])) for g in groups)
    if float(a @ b) >= SAME_VOICE_MIN:
        return windows
    minor = min(groups, key=len)
    if len(minor) >= max(2, MINOR_SHARE * len(chunks)):
        raise EnrolmentError("More than one voice seems to be in the recording. Please enrol alone, "
                             "with nobody else talking, and try again.")
    keep = np.ones(len(windows), bool)
    for i in minor:
        keep[i * CHUNK_WINDOWS:(i + 1) * CHUNK_WINDOWS] = False
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
