"""The engine registry: one registration is what config, CLI, docs and the factory offer."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.asr.engine import NullTranscriber
from appliance.asr.factory import make_engine
from appliance.asr.registry import (
    EMBEDDERS,
    ENGINES,
    Abilities,
    EngineSpec,
    embedder_for,
    engines_running,
)
from appliance.asr.sherpa_engine import OFFLINE_KINDS, ONLINE_KINDS
from appliance.cli import build_parser
from appliance.config import load_config
from appliance.config.docs import render_markdown
from appliance.config.schema import AsrConfig
from appliance.models import ModelError, write_manifest
from appliance.models.catalog import CATALOG
from common.config import ConfigError

FAKE = "fake-recognizer"


class CountingEngine(NullTranscriber):
    """What the fake registration builds: remembers the model it was given."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self.name = f"{FAKE}:{model_dir.name}"
        self.abilities = ENGINES.spec(FAKE).abilities


@pytest.fixture
def fake_engine() -> Iterator[EngineSpec]:
    spec = ENGINES.register(EngineSpec(
        FAKE, "a recognizer registered by a test", Abilities(offline=True, vocabulary=False, visit_context=False),
        ("fake-model-kind",), lambda cfg, manifest: CountingEngine(manifest.path)))  # type: ignore[union-attr]
    try:
        yield spec
    finally:
        ENGINES.unregister(FAKE)


def _transcribe_engine_choices() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    transcribe = sub.choices["transcribe"]
    return list(next(a for a in transcribe._actions if a.dest == "engine").choices)


def test_a_registered_engine_is_a_config_choice_a_cli_choice_and_documented(fake_engine, tmp_path):
    (tmp_path / "a.toml").write_text(f'[asr]\nengine = "{FAKE}"\n')
    assert load_config(str(tmp_path / "a.toml")).asr.engine == FAKE
    assert FAKE in _transcribe_engine_choices() and "none" not in _transcribe_engine_choices()
    assert f'`"{FAKE}"`' in render_markdown()


def test_an_unregistered_engine_is_refused_by_config_and_cli(tmp_path):
    (tmp_path / "a.toml").write_text(f'[asr]\nengine = "{FAKE}"\n')
    with pytest.raises(ConfigError, match="must be one of"):
        load_config(str(tmp_path / "a.toml"))
    assert FAKE not in _transcribe_engine_choices()
    assert _transcribe_engine_choices() == ["whisper-onnx", "moonshine-onnx", "sherpa-offline", "sherpa-online", "vosk"]


def test_the_factory_builds_a_registered_engine_from_a_model_made_for_it(fake_engine, tmp_path):
    model = tmp_path / "fake-model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\x01" * 64)
    write_manifest(model, name="fake-model", engine="fake-model-kind", version="1", source={"type": "test"},
                   licence="test")
    engine = make_engine(AsrConfig(engine=FAKE, model="fake-model"), str(tmp_path))
    assert isinstance(engine, CountingEngine) and engine.model_dir == model
    assert engine.new_stream(1.0).finish().text == ""
    assert engines_running({"engine": "fake-model-kind"}) == [FAKE]
    with pytest.raises(ModelError) as wrong:
        make_engine(AsrConfig(engine="vosk", model="fake-model"), str(tmp_path))
    assert f"made for fake-model-kind, but asr.engine is 'vosk': set asr.engine to {FAKE}" in str(wrong.value)


def test_a_model_no_engine_runs_is_named_as_such(tmp_path):
    model = tmp_path / "paraformer"
    model.mkdir()
    (model / "model.onnx").write_bytes(b"\x02" * 64)
    write_manifest(model, name="paraformer", engine="sherpa-offline-paraformer", version="1", source={},
                   licence="test")
    with pytest.raises(ModelError, match=r"made for sherpa-offline-paraformer.*no engine here runs it"):
        make_engine(AsrConfig(engine="sherpa-offline", model="paraformer"), str(tmp_path))


def test_a_name_is_registered_once():
    with pytest.raises(ValueError, match="registered twice"):
        ENGINES.register(dataclasses.replace(ENGINES.spec("vosk")))
    with pytest.raises(ValueError, match="unknown recognition engine 'nope'; known: whisper-onnx"):
        ENGINES.spec("nope")


def test_every_catalog_model_is_run_by_a_registered_engine():
    for entry in CATALOG.values():
        names = entry.manifest_names()
        runners = [*engines_running(names), *([s.name] if (s := embedder_for(names)) else []),
                   *(["vad"] if entry.engine == "silero-vad" else [])]
        assert runners, f"{entry.name} ({entry.engine}): no registered engine runs it"
    assert engines_running(CATALOG["whisper-tiny.en"].manifest_names()) == ["whisper-onnx", "sherpa-offline"]
    assert embedder_for(CATALOG["voicefilter-embedder"].manifest_names()) is EMBEDDERS.spec("d-vector")


def test_sherpa_model_kinds_are_the_ones_its_module_loads():
    def kinds(engine: str) -> set[str]:
        spec = ENGINES.spec(engine)
        return {spec.kind({"engine": k}) or "" for k in spec.model_kinds}

    assert kinds("sherpa-offline") == set(OFFLINE_KINDS) and kinds("sherpa-online") == set(ONLINE_KINDS)


def test_engines_that_need_no_model_build_without_one(tmp_path):
    engine = make_engine(AsrConfig(engine="none"), str(tmp_path / "absent"))
    assert isinstance(engine, NullTranscriber) and engine.abilities == ENGINES.spec("none").abilities
    assert engine.new_stream().finish().text == ""


def test_an_engine_built_with_other_abilities_than_registered_is_refused(tmp_path):
    """The pipeline trusts the registered abilities (early decoding): a builder may not drift."""
    ENGINES.register(EngineSpec(FAKE, "declares early decoding", Abilities(offline=True, vocabulary=False,
                                                                          visit_context=False),
                                ("fake-model-kind",), lambda cfg, manifest: NullTranscriber()))
    try:
        model = tmp_path / "fake-model"
        model.mkdir()
        (model / "weights.bin").write_bytes(b"\x03" * 64)
        write_manifest(model, name="fake-model", engine="fake-model-kind", version="1", source={}, licence="test")
        with pytest.raises(TypeError, match="abilities"):
            make_engine(AsrConfig(engine=FAKE, model="fake-model"), str(tmp_path))
    finally:
        ENGINES.unregister(FAKE)
