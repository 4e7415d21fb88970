"""A plain numpy float32 Whisper forward pass from CTranslate2 weights.

Slow and simple on purpose (decoder recomputes the whole sequence): it is the yardstick
the exported ONNX graphs are checked against, and the one place the weight mapping is
spelled out in the clearest form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import erf

from appliance.asr.whisper.ct2 import Ct2Model

LN_EPS = 1e-5


@dataclass(frozen=True)
class Dims:
    n_mels: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_audio_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int
    n_text_ctx: int
    n_vocab: int


def dims_of(model: Ct2Model) -> Dims:
    shapes = model.shapes()

    def count(prefix: str) -> int:
        return len({k.split("/")[1] for k in shapes if re.fullmatch(prefix + r"/layer_\d+/.*", k)})

    conv1 = shapes["encoder/conv1/weight"]
    emb = shapes["decoder/embeddings/weight"]
    return Dims(
        n_mels=conv1[1], n_audio_state=conv1[0], n_audio_head=int(model.raw("encoder/num_heads")),
        n_audio_layer=count("encoder"), n_audio_ctx=shapes["encoder/position_encodings/encodings"][0],
        n_text_state=emb[1], n_text_head=int(model.raw("decoder/num_heads")), n_text_layer=count("decoder"),
        n_text_ctx=shapes["decoder/position_encodings/encodings"][0], n_vocab=emb[0],
    )


def gelu(x: np.ndarray) -> np.ndarray:
    return (0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))).astype(np.float32)


def layer_norm(x: np.ndarray, w: _Float32Weights, prefix: str) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + LN_EPS) * w.get(prefix + "/gamma") + w.get(prefix + "/beta")


def linear(x: np.ndarray, w: _Float32Weights, prefix: str) -> np.ndarray:
    return x @ w.get(prefix + "/weight").T + w.get(prefix + "/bias")


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, heads: int, causal: bool) -> np.ndarray:
    """q (S, D), k/v (L, D) → (S, D); with ``causal`` the queries are the last S of L positions."""
    s, d = q.shape
    n = k.shape[0]
    hd = d // heads
    qh = q.reshape(s, heads, hd).transpose(1, 0, 2)
    kh = k.reshape(n, heads, hd).transpose(1, 2, 0)
    vh = v.reshape(n, heads, hd).transpose(1, 0, 2)
    scores = (qh @ kh) / np.sqrt(hd)
    if causal:
        allowed = np.arange(n)[None, :] <= (np.arange(s) + n - s)[:, None]
        scores = np.where(allowed, scores, -np.inf)
    scores = scores - scores.max(-1, keepdims=True)
    p = np.exp(scores)
    p /= p.sum(-1, keepdims=True)
    return (p @ vh).transpose(1, 0, 2).reshape(s, d)


def conv1d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int) -> np.ndarray:
    """x (C_in, T), weight (C_out, C_in, 3), padding 1 → (C_out, ceil(T / stride))."""
    xp = np.pad(x, ((0, 0), (1, 1)))
    t_out = (x.shape[1] - 1) // stride + 1
    cols = np.stack([xp[:, k:k + stride * (t_out - 1) + 1:stride] for k in range(3)], axis=1)  # C_in, 3, T
    return np.einsum("oik,ikt->ot", weight, cols, optimize=True) + bias[:, None]


class _Float32Weights:
    """float32 copies of the weights, converted once (the reference is for tests, not the device)."""

    def __init__(self, model: Ct2Model) -> None:
        self.model = model
        self._cache: dict[str, np.ndarray] = {}

    def get(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = self.model.get(name)
        return self._cache[name]


class ReferenceWhisper:
    def __init__(self, ct2_dir: Path) -> None:
        model = Ct2Model(ct2_dir)
        self.dims = dims_of(model)
        self.w = _Float32Weights(model)

    def encode(self, mel: np.ndarray) -> np.ndarray:
        """mel (n_mels, T) → audio features (ceil(T / 2), d)."""
        w = self.w
        x = gelu(conv1d(mel.astype(np.float32), w.get("encoder/conv1/weight"), w.get("encoder/conv1/bias"), 1))
        x = gelu(conv1d(x, w.get("encoder/conv2/weight"), w.get("encoder/conv2/bias"), 2)).T
        x = x + w.get("encoder/position_encodings/encodings")[: x.shape[0]]
        d = self.dims.n_audio_state
        for i in range(self.dims.n_audio_layer):
            p = f"encoder/layer_{i}"
            qkv = linear(layer_norm(x, w, p + "/self_attention/layer_norm"), w, p + "/self_attention/linear_0")
            a = attention(qkv[:, :d], qkv[:, d:2 * d], qkv[:, 2 * d:], self.dims.n_audio_head, causal=False)
            x = x + linear(a, w, p + "/self_attention/linear_1")
            h = gelu(linear(layer_norm(x, w, p + "/ffn/layer_norm"), w, p + "/ffn/linear_0"))
            x = x + linear(h, w, p + "/ffn/linear_1")
        return layer_norm(x, w, "encoder/layer_norm").astype(np.float32)

    def cross_kv(self, audio: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per decoder layer, the cross-attention keys and values of the audio features."""
        d = self.dims.n_text_state
        out = []
        for i in range(self.dims.n_text_layer):
            kv = linear(audio, self.w, f"decoder/layer_{i}/attention/linear_1")
            out.append((kv[:, :d], kv[:, d:]))
        return out

    def decode(self, tokens: list[int], audio: np.ndarray) -> np.ndarray:
        """Logits (len(tokens), n_vocab) for every position, full recompute."""
        w = self.w
        d = self.dims.n_text_state
        emb = w.get("decoder/embeddings/weight")
        x = emb[np.asarray(tokens)] + w.get("decoder/position_encodings/encodings")[: len(tokens)]
        for i, (ck, cv) in enumerate(self.cross_kv(audio)):
            p = f"decoder/layer_{i}"
            qkv = linear(layer_norm(x, w, p + "/self_attention/layer_norm"), w, p + "/self_attention/linear_0")
            a = attention(qkv[:, :d], qkv[:, d:2 * d], qkv[:, 2 * d:], self.dims.n_text_head, causal=True)
            x = x + linear(a, w, p + "/self_attention/linear_1")
            q = linear(layer_norm(x, w, p + "/attention/layer_norm"), w, p + "/attention/linear_0")
            x = x + linear(attention(q, ck, cv, self.dims.n_text_head, causal=False), w, p + "/attention/linear_2")
            h = gelu(linear(layer_norm(x, w, p + "/ffn/layer_norm"), w, p + "/ffn/linear_0"))
            x = x + linear(h, w, p + "/ffn/linear_1")
        x = layer_norm(x, w, "decoder/layer_norm")
        return (x @ emb.T).astype(np.float32)

    def greedy(self, mel: np.ndarray, prompt: list[int], max_tokens: int, eot: int) -> list[int]:
        """Plain greedy decoding (no suppression), for cross-checks."""
        audio = self.encode(mel)
        tokens = list(prompt)
        out: list[int] = []
        for _ in range(max_tokens):
            t = int(np.argmax(self.decode(tokens, audio)[-1]))
            if t == eot:
                break
            out.append(t)
            tokens.append(t)
        return out
