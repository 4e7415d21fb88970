"""The CTranslate2 model.bin reader (numpy only) on the real tiny.en weights."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from appliance.asr.whisper.ct2 import Ct2Model
from appliance.asr.whisper.reference import dims_of
from tests import asr_model

whisper_ct2_dir = asr_model.whisper_ct2_dir  # the shared session fixture


def test_header_aliases_and_dims(whisper_ct2_dir):
    m = Ct2Model(whisper_ct2_dir)
    assert (m.version, m.spec, m.revision) == (6, "WhisperSpec", 3)
    assert m.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    d = dims_of(m)
    assert (d.n_mels, d.n_audio_layer, d.n_text_layer, d.n_text_state, d.n_text_head) == (80, 4, 4, 384, 6)
    assert (d.n_audio_ctx, d.n_text_ctx, d.n_vocab) == (1500, 448, 51864)


def test_variables_shapes_dtypes_and_alias(whisper_ct2_dir):
    m = Ct2Model(whisper_ct2_dir)
    assert m.raw("encoder/conv1/weight").shape == (384, 80, 3)
    assert m.raw("decoder/layer_0/self_attention/linear_0/weight").shape == (1152, 384)
    assert m.raw("decoder/layer_3/attention/linear_1/weight").shape == (768, 384)
    emb = m.raw("decoder/embeddings/weight")
    assert emb.dtype == np.float16 and emb.shape == (51864, 384)
    proj = m.get("decoder/projection/weight")  # resolved through the alias
    assert proj.dtype == np.float32 and np.array_equal(proj, emb.astype(np.float32))
    assert int(m.raw("decoder/num_heads")) == 6
    # Whisper's key projections have no bias: CTranslate2 stores zeros for that slice.
    assert not np.any(m.get("encoder/layer_0/self_attention/linear_0/bias")[384:768])
    assert "decoder/projection/weight" in m and "nope" not in m
    with pytest.raises(KeyError, match="nope"):
        m.raw("nope")


def test_reads_a_small_handmade_file(tmp_path: Path):
    """The format as documented, written by hand: f32 and f16 variables, one alias."""

    def name(s: str) -> bytes:
        raw = s.encode() + b"\0"
        return struct.pack("<H", len(raw)) + raw

    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([1.5, -2.0], np.float16)
    blob = struct.pack("<I", 6) + name("TestSpec") + struct.pack("<II", 1, 2)
    blob += name("x/a") + struct.pack("<B2IBI", 2, 2, 3, 0, a.nbytes) + a.tobytes()
    blob += name("x/b") + struct.pack("<BIBI", 1, 2, 4, b.nbytes) + b.tobytes()
    blob += struct.pack("<I", 1) + name("x/c") + name("x/a")
    (tmp_path / "model.bin").write_bytes(blob)
    m = Ct2Model(tmp_path)
    assert m.spec == "TestSpec" and list(m) == ["x/a", "x/b"]
    assert np.array_equal(m.get("x/c"), a) and m.get("x/b").tolist() == [1.5, -2.0]
