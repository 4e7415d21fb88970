"""Build the recognition engine the config asks for, from a verified installed model.

Every failure a clinic IT person can fix (model not installed, files damaged, a model made
for another engine) raises `ModelError` with the command or setting that fixes it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from appliance.asr.engine import Engine, NullTranscriber, Recognition, Transcriber, transcribe_with
from appliance.asr.vocabulary import VocabularyError
from appliance.config.schema import AsrConfig
from appliance.models import ModelError, load_manifest, resolve_model

log = logging.getLogger(__name__)


def resolve_model_dir(cfg: AsrConfig, models_dir: str) -> Path:
    """cfg.model as a directory: an absolute path, or a name under models_dir."""
    return resolve_model(models_dir, cfg.model)


def load_checked_manifest(model_dir: Path, *, fresh: bool = False) -> dict[str, Any]:
    """The manifest's JSON layout, after every file was verified (sha256)."""
    return load_manifest(model_dir, fresh=fresh).to_json()


def manifest_engines(manifest: dict[str, Any]) -> list[str]:
    names = [manifest.get("engine"), *(manifest.get("engines") or [])]
    return list(dict.fromkeys(e for e in names if isinstance(e, str)))


def engine_matches(engine: str, manifest: dict[str, Any]) -> bool:
    """"sherpa-online" runs a model made for "sherpa-online-transducer"; names match exactly otherwise."""
    return any(e == engine or e.startswith(engine + "-") for e in manifest_engines(manifest))


def make_engine(cfg: AsrConfig, models_dir: str, *, fresh: bool = False) -> Engine:
    """The engine for cfg.engine running cfg.model. ``fresh=True`` rehashes the model's files."""
    if cfg.engine == "none":
        return NullTranscriber()
    model_dir = resolve_model_dir(cfg, models_dir)
    manifest = load_checked_manifest(model_dir, fresh=fresh)
    name = str(manifest.get("name") or model_dir.name)
    if not engine_matches(cfg.engine, manifest):
        made_for = " / ".join(manifest_engines(manifest)) or "an unnamed engine"
        raise ModelError(
            name, f"made for {made_for}, but asr.engine is {cfg.engine!r}: set asr.engine to match, "
                  f"or set asr.model to a model made for {cfg.engine}",
        )
    try:
        return _build(cfg, model_dir, manifest)
    except VocabularyError:
        raise  # a config problem (asr.vocabulary_file), not the model's
    except (FileNotFoundError, ValueError) as e:  # sherpa ManifestError, missing files, bad layout
        raise ModelError(name, f"cannot be loaded by {cfg.engine}: {e}") from e


def _build(cfg: AsrConfig, model_dir: Path, manifest: dict[str, Any]) -> Engine:
    if cfg.engine == "whisper-onnx":
        try:
            from appliance.asr.whisper import WhisperOnnx  # built separately; imported only when chosen
        except ImportError as e:
            raise ModelError(str(manifest.get("name")), f"the whisper-onnx engine is not available here: {e}") from e
        return WhisperOnnx(model_dir, cfg)
    if cfg.engine == "sherpa-offline":
        from appliance.asr.sherpa_engine import SherpaOfflineEngine

        return SherpaOfflineEngine(model_dir, cfg, manifest)
    if cfg.engine == "sherpa-online":
        from appliance.asr.sherpa_engine import SherpaOnlineEngine

        return SherpaOnlineEngine(model_dir, cfg, manifest)
    if cfg.engine == "vosk":
        from appliance.asr.vosk_engine import VoskEngine

        return VoskEngine(model_dir, cfg)
    raise ValueError(f"unknown asr.engine {cfg.engine!r}")


class EngineTranscriber:
    """Whole-utterance view of an engine, what the pipeline's worker calls."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.name = engine.name

    def transcribe(self, audio: np.ndarray) -> Recognition:
        return transcribe_with(self.engine, audio)


def as_transcriber(engine: Engine) -> Transcriber:
    if isinstance(engine, NullTranscriber):
        return engine  # already both
    return EngineTranscriber(engine)
