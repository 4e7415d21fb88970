"""Whisper's encoder and decoder as hand-built ONNX graphs, in two layouts.

``sherpa``: the I/O contract of sherpa-onnx's ``OfflineRecognizer.from_whisper`` — stacked
cross K/V (n_layer, 1, T, D); a decoder taking and returning full (n_layer, 1, n_text_ctx, D)
self-attention caches with an ``offset``, logits for every input position.

``fast``: for our own runtime — per-layer cross K/V already split into heads (1, H, T, Dh)
so no decoder step reshapes them; per-layer self K/V prefixes of dynamic length as
separate inputs (views of the runtime's preallocated buffers); only the new K/V rows and
the last position's logits as outputs; attention through ONNX Runtime's fused
MultiHeadAttention (com.microsoft) instead of ~10 plain ops per attention.

Both fold the attention scale 1/sqrt(head_dim) into the query weights and keep the token
embedding as one int8 table shared by lookup and logits (see ``TiedEmbedding``).
"""

from __future__ import annotations

import numpy as np
import onnx

from appliance.asr.whisper.ct2 import Ct2Model
from appliance.asr.whisper.graph import FLOAT, INT64, GraphBuilder, TiedEmbedding
from appliance.asr.whisper.reference import Dims

LAYOUTS = ("sherpa", "fast")


class _Weights:
    def __init__(self, model: Ct2Model, dims: Dims) -> None:
        self.m = model
        self.dims = dims

    def __call__(self, name: str) -> np.ndarray:
        return self.m.get(name)

    def qkv(self, prefix: str, heads: int) -> tuple[np.ndarray, np.ndarray]:
        """Stacked q/k/v projection with the attention scale folded into the q rows."""
        w, b = self(prefix + "/weight"), self(prefix + "/bias")
        d = w.shape[1]
        scale = (d // heads) ** -0.5
        w[:d] *= scale
        b[:d] *= scale
        return w, b


def _block_tail(g: GraphBuilder, w: _Weights, p: str, x: str) -> str:
    """The feed-forward half of a transformer block (pre-norm, residual)."""
    h = g.layer_norm(x, w(p + "/ffn/layer_norm/gamma"), w(p + "/ffn/layer_norm/beta"), p + "/ffn/ln")
    h = g.gelu(g.linear(h, w(p + "/ffn/linear_0/weight"), w(p + "/ffn/linear_0/bias"), p + "/ffn/fc1"))
    return g.op("Add", x, g.linear(h, w(p + "/ffn/linear_1/weight"), w(p + "/ffn/linear_1/bias"), p + "/ffn/fc2"))


def _qkv(g: GraphBuilder, w: _Weights, p: str, x: str, heads: int, names: list[str] | None = None) -> list[str]:
    h = g.layer_norm(x, w(p + "/self_attention/layer_norm/gamma"), w(p + "/self_attention/layer_norm/beta"),
                     p + "/attn/ln")
    qkv_w, qkv_b = w.qkv(p + "/self_attention/linear_0", heads)
    qkv = g.linear(h, qkv_w, qkv_b, p + "/attn/qkv")
    d = qkv_w.shape[1]
    return g.op_multi("Split", qkv, g.ints(d, d, d), axis=-1, outputs=names or 3)


def build_encoder(model: Ct2Model, dims: Dims, layout: str) -> onnx.ModelProto:
    w = _Weights(model, dims)
    g = GraphBuilder("whisper_encoder")
    d, heads, hd = dims.n_audio_state, dims.n_audio_head, dims.n_audio_state // dims.n_audio_head
    mel = g.add_input("mel", FLOAT, ["n_audio", dims.n_mels, "T"])
    x = g.op("Conv", mel, g.weight("conv1.weight", w("encoder/conv1/weight")), g.weight("conv1.bias", w(
        "encoder/conv1/bias")), kernel_shape=[3], pads=[1, 1])
    x = g.op("Conv", g.gelu(x), g.weight("conv2.weight", w("encoder/conv2/weight")), g.weight("conv2.bias", w(
        "encoder/conv2/bias")), kernel_shape=[3], pads=[1, 1], strides=[2])
    x = g.op("Transpose", g.gelu(x), perm=[0, 2, 1])  # (1, T/2, D)
    # Only the first T/2 positions: inputs shorter than 30 s must not be broadcast against 1500.
    n_pos = g.op("Shape", x, start=1, end=2)
    pos = g.op("Slice", g.weight("positional_embedding", w("encoder/position_encodings/encodings")),
               g.ints(0), n_pos, g.ints(0))
    x = g.op("Add", x, pos)
    fused = layout == "fast"  # sherpa-onnx gets plain ONNX ops only
    for i in range(dims.n_audio_layer):
        p = f"encoder/layer_{i}"
        q, k, v = _qkv(g, w, p, x, heads)
        if fused:
            a = g.mha(q, k, v, heads)
        else:
            a = g.attend(g.split_heads(q, heads, hd), g.split_heads(k, heads, hd, transpose_k=True),
                         g.split_heads(v, heads, hd), None, d)
        x = g.op("Add", x, g.linear(a, w(p + "/self_attention/linear_1/weight"),
                                    w(p + "/self_attention/linear_1/bias"), p + "/attn/out"))
        x = _block_tail(g, w, p, x)
    x = g.layer_norm(x, w("encoder/layer_norm/gamma"), w("encoder/layer_norm/beta"), "encoder/ln_post")

    # Cross-attention keys/values of every decoder layer in one matmul.
    n_layer, dt = dims.n_text_layer, dims.n_text_state
    kv_w = np.concatenate([w(f"decoder/layer_{i}/attention/linear_1/weight") for i in range(n_layer)])
    kv_b = np.concatenate([w(f"decoder/layer_{i}/attention/linear_1/bias") for i in range(n_layer)])
    kv = g.op_multi("Split", g.linear(x, kv_w, kv_b, "decoder/cross_kv"), g.ints(*[dt] * (2 * n_layer)), axis=-1,
                    outputs=2 * n_layer)
    th = dims.n_text_head
    if layout == "sherpa":
        for j, out in enumerate(("n_layer_cross_k", "n_layer_cross_v")):
            stacked = g.op("Concat", *[g.op("Unsqueeze", kv[2 * i + j], g.ints(0)) for i in range(n_layer)], axis=0)
            g.add_output(out, stacked, FLOAT, [n_layer, "n_audio", "T", dt])
    else:
        for i in range(n_layer):  # split into heads once here, not at every decoder step
            g.add_output(f"cross_k_{i}", g.split_heads(kv[2 * i], th, dt // th), FLOAT, [1, th, "T", dt // th])
            g.add_output(f"cross_v_{i}", g.split_heads(kv[2 * i + 1], th, dt // th), FLOAT, [1, th, "T", dt // th])
    return g.model()


def _causal_mask(g: GraphBuilder, past_len: str, n_new: str) -> str:
    """(L, P + L) additive mask: query i (at position P + i) sees keys 0 … P + i."""
    p = g.op("Squeeze", past_len, g.ints(0))
    n = g.op("Squeeze", n_new, g.ints(0))
    total = g.op("Add", p, n)
    rows = g.op("Unsqueeze", g.op("Range", p, total, g.index(1)), g.ints(1))
    cols = g.op("Range", g.index(0), total, g.index(1))
    return g.op("Where", g.op("Greater", cols, rows), g.scalar(-1e9), g.scalar(0.0))


def build_decoder(model: Ct2Model, dims: Dims, layout: str, quantize_embedding: bool = True) -> onnx.ModelProto:
    w = _Weights(model, dims)
    g = GraphBuilder("whisper_decoder")
    d, heads, n_layer, ctx = dims.n_text_state, dims.n_text_head, dims.n_text_layer, dims.n_text_ctx
    hd = d // heads
    sherpa = layout == "sherpa"
    tokens = g.add_input("tokens", INT64, ["n_audio", "n_tokens"] if sherpa else [1, "L"])
    if sherpa:
        cache_k = g.add_input("in_n_layer_self_k_cache", FLOAT, [n_layer, "n_audio", ctx, d])
        cache_v = g.add_input("in_n_layer_self_v_cache", FLOAT, [n_layer, "n_audio", ctx, d])
        cross_k_all = g.add_input("n_layer_cross_k", FLOAT, [n_layer, "n_audio", "T", d])
        cross_v_all = g.add_input("n_layer_cross_v", FLOAT, [n_layer, "n_audio", "T", d])
    else:
        past = [(g.add_input(f"self_k_{i}", FLOAT, [1, "P", d]), g.add_input(f"self_v_{i}", FLOAT, [1, "P", d]))
                for i in range(n_layer)]
        cross = [(g.add_input(f"cross_k_{i}", FLOAT, [1, heads, "T", hd]),
                  g.add_input(f"cross_v_{i}", FLOAT, [1, heads, "T", hd])) for i in range(n_layer)]
    offset = g.add_input("offset", INT64, [1])

    emb = TiedEmbedding(g, w("decoder/embeddings/weight"), quantize_embedding)
    n_new = g.op("Shape", tokens, start=1, end=2)
    end = g.op("Add", offset, n_new)
    pos = g.op("Slice", g.weight("positional_embedding", w("decoder/position_encodings/encodings")), offset, end,
               g.ints(0))
    x = g.op("Add", emb.lookup(tokens), pos)
    past_len = offset if sherpa else g.op("Shape", past[0][0], start=1, end=2)
    mask = _causal_mask(g, past_len, n_new)
    if not sherpa:
        mask = g.op("Unsqueeze", mask, g.ints(0, 1))  # (1, 1, L, P + L), MultiHeadAttention's bias

    new_caches: list[tuple[str, str]] = []
    for i in range(n_layer):
        p = f"decoder/layer_{i}"
        # The new K/V rows are graph outputs by name: no Identity copies.
        q, k, v = _qkv(g, w, p, x, heads, None if sherpa else [g.fresh(f"q_{i}"), f"new_k_{i}", f"new_v_{i}"])
        if sherpa:
            pk, pv = (g.op("Squeeze", g.op("Slice", c, g.ints(i, 0), g.op("Concat", g.ints(i + 1), offset, axis=0),
                                           g.ints(0, 2)), g.ints(0)) for c in (cache_k, cache_v))
        else:
            pk, pv = past[i]
        k_all, v_all = g.op("Concat", pk, k, axis=1), g.op("Concat", pv, v, axis=1)
        new_caches.append((k, v) if not sherpa else (k_all, v_all))
        if sherpa:
            a = g.attend(g.split_heads(q, heads, hd), g.split_heads(k_all, heads, hd, transpose_k=True),
                         g.split_heads(v_all, heads, hd), mask, d)
        else:
            a = g.mha(q, k_all, v_all, heads, mask)
        x = g.op("Add", x, g.linear(a, w(p + "/self_attention/linear_1/weight"),
                                    w(p + "/self_attention/linear_1/bias"), p + "/attn/out"))

        h = g.layer_norm(x, w(p + "/attention/layer_norm/gamma"), w(p + "/attention/layer_norm/beta"),
                         p + "/cross/ln")
        cq_w, cq_b = w(p + "/attention/linear_0/weight"), w(p + "/attention/linear_0/bias")
        cq = g.linear(h, cq_w * hd ** -0.5, cq_b * hd ** -0.5, p + "/cross/q")
        if sherpa:
            ck = g.split_heads(g.op("Gather", cross_k_all, g.index(i), axis=0), heads, hd, transpose_k=True)
            cv = g.split_heads(g.op("Gather", cross_v_all, g.index(i), axis=0), heads, hd)
            a = g.attend(g.split_heads(cq, heads, hd), ck, cv, None, d)
        else:
            a = g.mha(cq, cross[i][0], cross[i][1], heads)
        x = g.op("Add", x, g.linear(a, w(p + "/attention/linear_2/weight"), w(p + "/attention/linear_2/bias"),
                                    p + "/cross/out"))
        x = _block_tail(g, w, p, x)

    if not sherpa:  # only the last position is ever sampled
        x = g.op("Slice", x, g.ints(-1), g.ints(np.iinfo(np.int64).max), g.ints(1))
    x = g.layer_norm(x, w("decoder/layer_norm/gamma"), w("decoder/layer_norm/beta"), "decoder/ln")
    logits = emb.logits(x)
    if sherpa:
        g.add_output("logits", logits, FLOAT, ["n_audio", "n_tokens", dims.n_vocab])
        for j, (name, cache) in enumerate((("out_n_layer_self_k_cache", cache_k),
                                           ("out_n_layer_self_v_cache", cache_v))):
            layers = []
            for i in range(n_layer):
                tail = g.op("Slice", cache, g.op("Concat", g.ints(i), end, axis=0),
                            g.ints(i + 1, np.iinfo(np.int64).max), g.ints(0, 2))
                head = g.op("Unsqueeze", new_caches[i][j], g.ints(0))
                layers.append(g.op("Concat", head, tail, axis=2))
            g.add_output(name, g.op("Concat", *layers, axis=0), FLOAT, [n_layer, "n_audio", ctx, d])
    else:
        g.add_output("logits", g.op("Reshape", logits, g.ints(1, -1)), FLOAT, [1, dims.n_vocab])
        for k, v in new_caches:
            g.add_output(k, k, FLOAT, [1, "L", d])
            g.add_output(v, v, FLOAT, [1, "L", d])
    return g.model()
