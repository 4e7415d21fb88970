"""The hand-built ONNX graphs against the numpy reference, and the sherpa-onnx layout in sherpa-onnx."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import soundfile as sf

from appliance.asr.whisper.ct2 import Ct2Model
from appliance.asr.whisper.features import log_mel
from appliance.asr.whisper.onnx_graphs import build_decoder, build_encoder
from appliance.asr.whisper.reference import ReferenceWhisper, dims_of
from appliance.asr.whisper.tokenizer import WhisperTokenizer
from tests import asr_model
from tests.speech import espeak

pytestmark = pytest.mark.slow  # a browser, a broker or a daemon process: make check leaves it to make test

whisper_ct2_dir = asr_model.whisper_ct2_dir  # the shared session fixture
whisper_model_dir = asr_model.whisper_model_dir  # the shared session fixture

SOT, EOT, NO_TIMESTAMPS = 50257, 50256, 50362
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


@pytest.fixture(scope="module")
def case(whisper_ct2_dir):
    """An espeak-ng sentence, its features, and the reference's greedy tokens and logits."""
    ref = ReferenceWhisper(whisper_ct2_dir)
    mel = log_mel(espeak("He stopped smoking about five years ago.", wpm=145), padding=160)
    mel = np.pad(mel, ((0, 0), (0, 300 + mel.shape[1] % 2)))  # as the runtime does
    audio = ref.encode(mel)
    tokens = ref.greedy(mel, [SOT, NO_TIMESTAMPS], 12, EOT)
    seq = [SOT, NO_TIMESTAMPS, *tokens]
    return {"ref": ref, "mel": mel, "audio": audio, "seq": seq, "logits": ref.decode(seq, audio)}


def _session(model: onnx.ModelProto | Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    src = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def run_fast(enc: ort.InferenceSession, dec: ort.InferenceSession, mel: np.ndarray, seq: list[int]) -> np.ndarray:
    """Logits after each position from the 2nd on: prompt in one call, then a token per call."""
    cross = dict(zip([o.name for o in enc.get_outputs()], enc.run(None, {"mel": mel[None]}), strict=True))
    past = {f"self_{c}_{i}": np.zeros((1, 0, 384), np.float32) for i in range(4) for c in "kv"}
    names = [o.name for o in dec.get_outputs()]
    out, pos = [], 0
    for chunk in [seq[:2]] + [[t] for t in seq[2:]]:
        res = dict(zip(names, dec.run(None, {"tokens": np.array([chunk]), "offset": np.array([pos]), **past, **cross}),
                       strict=True))
        assert res["logits"].shape == (1, 51864) and res["new_k_0"].shape == (1, len(chunk), 384)
        out.append(res["logits"][0])
        for key in past:
            past[key] = np.concatenate([past[key], res["new" + key[4:]]], axis=1)
        pos += len(chunk)
    return np.stack(out)


def run_sherpa(enc: ort.InferenceSession, dec: ort.InferenceSession, mel: np.ndarray, seq: list[int]) -> np.ndarray:
    """The way sherpa-onnx drives it: full 448-row caches in and out, an offset."""
    ck, cv = enc.run(None, {"mel": mel[None]})
    assert ck.shape == (4, 1, mel.shape[1] // 2, 384)
    k = v = np.zeros((4, 1, 448, 384), np.float32)
    out, pos = [], 0
    for chunk in [seq[:2]] + [[t] for t in seq[2:]]:
        logits, k, v = dec.run(None, {"tokens": np.array([chunk]), "in_n_layer_self_k_cache": k,
                                      "in_n_layer_self_v_cache": v, "n_layer_cross_k": ck, "n_layer_cross_v": cv,
                                      "offset": np.array([pos])})
        assert logits.shape == (1, len(chunk), 51864) and k.shape == (4, 1, 448, 384)
        out.append(logits[0, -1])
        pos += len(chunk)
    return np.stack(out)


RUNNERS = {"fast": run_fast, "sherpa": run_sherpa}


@pytest.mark.parametrize("layout", ["fast", "sherpa"])
def test_float_graphs_match_reference(whisper_ct2_dir, case, layout):
    model = Ct2Model(whisper_ct2_dir)
    dims = dims_of(model)
    enc = _session(build_encoder(model, dims, layout))
    dec = _session(build_decoder(model, dims, layout, quantize_embedding=False))
    got = RUNNERS[layout](enc, dec, case["mel"], case["seq"])
    want = case["logits"][1:]
    assert np.abs(got - want).max() < 1e-3 * np.abs(want).max()


@pytest.mark.parametrize("layout", ["fast", "sherpa"])
def test_int8_export_stays_close_to_reference(whisper_model_dir, case, layout):
    prefix = "" if layout == "fast" else "tiny.en-"
    enc = _session(whisper_model_dir / f"{prefix}encoder.int8.onnx")
    dec = _session(whisper_model_dir / f"{prefix}decoder.int8.onnx")
    got = RUNNERS[layout](enc, dec, case["mel"], case["seq"])
    want = case["logits"][1:]
    # Teacher-forced on the reference's own greedy tokens, int8 picks the same token nearly always.
    agree = np.mean(got.argmax(-1) == want.argmax(-1))
    corr = min(np.corrcoef(g, w)[0, 1] for g, w in zip(got, want, strict=True))
    assert agree >= 0.9 and corr > 0.98, (agree, corr)


def test_export_files_names_and_metadata(whisper_model_dir):
    files = {p.name: p.stat().st_size for p in whisper_model_dir.iterdir()}
    assert files["encoder.int8.onnx"] < 16e6 and files["tiny.en-encoder.int8.onnx"] < 16e6
    # The tied embedding is stored once as int8 (float32 it alone would be 80 MB).
    assert files["decoder.int8.onnx"] < 35e6 and files["tiny.en-decoder.int8.onnx"] < 35e6
    enc = _session(whisper_model_dir / "tiny.en-encoder.int8.onnx")
    dec = _session(whisper_model_dir / "tiny.en-decoder.int8.onnx")
    assert [i.name for i in enc.get_inputs()] == ["mel"]
    assert [o.name for o in enc.get_outputs()] == ["n_layer_cross_k", "n_layer_cross_v"]
    assert [i.name for i in dec.get_inputs()] == ["tokens", "in_n_layer_self_k_cache", "in_n_layer_self_v_cache",
                                                  "n_layer_cross_k", "n_layer_cross_v", "offset"]
    assert [o.name for o in dec.get_outputs()] == ["logits", "out_n_layer_self_k_cache", "out_n_layer_self_v_cache"]
    meta = enc.get_modelmeta().custom_metadata_map
    expect = {"n_mels": "80", "n_text_layer": "4", "n_text_ctx": "448", "n_text_state": "384", "n_vocab": "51864",
              "sot": "50257", "eot": "50256", "blank_id": "220", "no_speech": "50361", "no_timestamps": "50362",
              "is_multilingual": "0", "sot_sequence": "50257", "translate": "50357", "transcribe": "50358"}
    assert {k: meta.get(k) for k in expect} == expect


def test_tokens_file_is_base64_of_token_bytes(whisper_model_dir):
    tok = WhisperTokenizer(whisper_model_dir / "tokenizer.json")
    lines = (whisper_model_dir / "tiny.en-tokens.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 50256
    for line in lines[::97] + lines[-3:]:
        b64, idx = line.split(" ")
        assert base64.b64decode(b64) == tok.token_bytes[int(idx)]


def test_sherpa_onnx_runs_the_sherpa_layout(whisper_model_dir):
    sherpa_onnx = pytest.importorskip("sherpa_onnx")
    rec = sherpa_onnx.OfflineRecognizer.from_whisper(
        encoder=str(whisper_model_dir / "tiny.en-encoder.int8.onnx"),
        decoder=str(whisper_model_dir / "tiny.en-decoder.int8.onnx"),
        tokens=str(whisper_model_dir / "tiny.en-tokens.txt"), num_threads=1, language="", task="transcribe")

    def text(audio: np.ndarray) -> str:
        s = rec.create_stream()
        s.accept_waveform(16000, audio)
        rec.decode_stream(s)
        return s.result.text.strip()

    assert text(espeak("We will check your blood pressure again next month.", wpm=145)) == \
        "We will check your blood pressure again next month."
    clip = LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0870.wav"
    if not clip.is_file():
        pytest.skip("pocketsphinx-testdata (real recordings) is not installed")
    audio, rate = sf.read(clip, dtype="float32")
    assert rate == 16000 and text(audio) == ("And Mr. John Dashwood had then leisure to consider how much there might "
                                             "be prudently in his power to do for them.")
