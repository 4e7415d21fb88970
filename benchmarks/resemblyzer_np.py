"""Resemblyzer's GE2E voice encoder (PyPI `resemblyzer`, weights inside the wheel) run in numpy,
so it can be measured against the device's d-vector model without installing PyTorch.

The wheel's `pretrained.pt` is a legacy (non-zip) torch checkpoint: a magic-number pickle, a
protocol pickle, a system-info pickle, the state-dict pickle whose tensors name their storage
by persistent id, the list of storage keys, then each storage's raw bytes after an 8-byte
element count. Read with the standard library's pickle; nothing of torch is needed.

Front end as the package computes it with librosa: 25 ms Hann window (n_fft 400, centred,
reflect-padded), 10 ms hop, power spectrum, 40 Slaney mel bands, *not* log; 160-frame
partials at half overlap, each through a 3-layer LSTM (256) + linear + ReLU, L2-normalised,
then averaged and normalised again. Used only by benchmarks/embedders.py.
"""

from __future__ import annotations

import importlib.util
import pickle
import struct
from pathlib import Path

import numpy as np

from appliance.diarize.embedder import FRAME, RATE, slaney_mel, voiced_frames

N_FFT, HOP, N_MELS, PARTIAL = 400, 160, 40, 160
_DTYPES = {"FloatStorage": np.float32, "LongStorage": np.int64, "IntStorage": np.int32}


def weights_path() -> Path:
    spec = importlib.util.find_spec("resemblyzer")  # the package itself imports torch: not imported
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("PyPI package resemblyzer is not installed (pip install --no-deps resemblyzer)")
    return Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"


def load_legacy_torch(path: Path) -> dict[str, np.ndarray]:
    """The state dict of a legacy-format torch checkpoint, as numpy arrays."""
    f = path.open("rb")
    for _ in range(3):  # magic number, protocol version, system info
        pickle.load(f)
    storages: dict[str, tuple[str, int]] = {}

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str):  # type: ignore[no-untyped-def]
            if module == "torch._utils" and name == "_rebuild_tensor_v2":
                return lambda storage, offset, size, stride, *a: ("tensor", storage, offset, size, stride)
            if module == "torch" and name.endswith("Storage"):
                return name
            if module == "collections" and name == "OrderedDict":
                return _StateDict
            return super().find_class(module, name)

        def persistent_load(self, pid):  # type: ignore[no-untyped-def]
            _, kind, key, _location, size = pid[:5]
            storages[key] = (kind, size)
            return key

    state = Unpickler(f).load()
    keys = pickle.load(f)
    raw: dict[str, np.ndarray] = {}
    for key in keys:
        (count,) = struct.unpack("<q", f.read(8))
        dtype = _DTYPES[storages[key][0]]
        raw[key] = np.frombuffer(f.read(count * np.dtype(dtype).itemsize), dtype)

    def tensor(t):  # type: ignore[no-untyped-def]
        _, key, offset, size, stride = t
        item = raw[key].itemsize
        return np.lib.stride_tricks.as_strided(raw[key][offset:], size, [s * item for s in stride]).copy()

    model = state["model_state"]
    return {k: tensor(v) for k, v in model.items() if isinstance(v, tuple) and v and v[0] == "tensor"}


class ResemblyzerEmbedder:
    """Embedder protocol (embed / window_embeddings) over the GE2E encoder, numpy only."""

    name = "resemblyzer-ge2e"
    dim = 256
    window_s = PARTIAL * HOP / RATE

    def __init__(self, path: Path | None = None) -> None:
        w = load_legacy_torch(path or weights_path())
        self.layers = [(w[f"lstm.weight_ih_l{k}"].T.astype(np.float32), w[f"lstm.weight_hh_l{k}"].T.astype(np.float32),
                        (w[f"lstm.bias_ih_l{k}"] + w[f"lstm.bias_hh_l{k}"]).astype(np.float32)) for k in range(3)]
        self.linear = (w["linear.weight"].T.astype(np.float32), w["linear.bias"].astype(np.float32))
        self.mel = slaney_mel(RATE, N_FFT, N_MELS).T  # (bins, mels)
        self.window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)  # periodic, as librosa

    def features(self, audio: np.ndarray) -> np.ndarray:
        y = np.pad(np.asarray(audio, np.float32), N_FFT // 2, mode="reflect")
        n = 1 + (y.size - N_FFT) // HOP
        idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n)[:, None]
        spec = np.fft.rfft(y[idx] * self.window, axis=1)
        return ((spec.real ** 2 + spec.imag ** 2) @ self.mel).astype(np.float32)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        x = batch
        for wi, wh, b in self.layers:
            n, t, _ = x.shape
            h, c = np.zeros((n, 256), np.float32), np.zeros((n, 256), np.float32)
            pre = x @ wi + b  # (n, t, 1024): gates i, f, g, o (torch order)
            out = np.empty((n, t, 256), np.float32)
            for s in range(t):
                g = pre[:, s] + h @ wh
                i, f, gg, o = (g[:, :256], g[:, 256:512], g[:, 512:768], g[:, 768:])
                c = _sig(f) * c + _sig(i) * np.tanh(gg)
                h = _sig(o) * np.tanh(c)
                out[:, s] = h
            x = out
        e = np.maximum(x[:, -1] @ self.linear[0] + self.linear[1], 0.0)
        return e / (np.linalg.norm(e, axis=1, keepdims=True) + 1e-12)

    def window_embeddings(self, audio16k: np.ndarray, hop_s: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        audio = np.asarray(audio16k, np.float32)
        voiced = voiced_frames(audio)
        if voiced.any():  # the same pause removal as the d-vector embedder: voice only
            audio = audio[: voiced.size * FRAME].reshape(-1, FRAME)[voiced].reshape(-1)
        if audio.size < 0.5 * RATE:
            return np.zeros(0), np.zeros((0, self.dim), np.float32)
        feats = self.features(audio)
        hop = PARTIAL // 2 if hop_s is None else max(1, round(hop_s * RATE / HOP))
        starts = [0] if len(feats) <= PARTIAL else list(range(0, len(feats) - PARTIAL + 1, hop))
        batch = np.stack([np.resize(feats[s:s + PARTIAL], (PARTIAL, N_MELS)) for s in starts])
        centres = (np.array(starts) + min(PARTIAL, len(feats)) / 2) * HOP / RATE
        return centres, self._run(batch)

    def embed(self, audio16k: np.ndarray) -> np.ndarray | None:
        _, v = self.window_embeddings(audio16k)
        if not len(v):
            return None
        m = v.mean(axis=0)
        return (m / (np.linalg.norm(m) + 1e-12)).astype(np.float32)


class _StateDict(dict):  # torch pickles a state dict's `_metadata` as an attribute
    pass


def _sig(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))
