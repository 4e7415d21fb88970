"""Build the recognition engine the config asks for, from a verified installed model.

Every failure a clinic IT person can fix (model not installed, files damaged, a model made
for another engine) raises `ModelError` with the command or setting that fixes it.
"""

from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from appliance.asr.engine import Engine, NullTranscriber, Recognition, Transcriber, transcribe_with
from appliance.asr.vocabulary import VocabularyError
from appliance.config.schema import AsrConfig

log = logging.getLogger(__name__)


def _models_module() -> Any | None:
    """appliance.models if it is built, else None (the fallback below covers its basics)."""
    for name in ("appliance.models", "appliance.models.manifest"):
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and name.startswith(e.name):
                continue
            raise
        if hasattr(mod, "load_manifest") and hasattr(mod, "ModelError"):
            return mod
    return None


class _FallbackModelError(Exception):
    def __init__(self, model: str, problem: str, file: str | None = None) -> None:
        self.model, self.file, self.problem = model, file, problem
        super().__init__(f"model {model!r}" + (f": file {file}" if file else "") + f": {problem}")


_models = _models_module()
ModelError: type[Exception] = _models.ModelError if _models else _FallbackModelError


def _install_hint(name: str, models_dir: str) -> str:
    return f"run: appliance models install {name} --dir {models_dir}"


def resolve_model_dir(cfg: AsrConfig, models_dir: str) -> Path:
    """cfg.model as a directory: an absolute path, or a name under models_dir."""
    if _models is not None and hasattr(_models, "resolve_model"):
        return Path(_models.resolve_model(models_dir, cfg.model))
    path = Path(cfg.model)
    if path.is_absolute():
        if not (path / "manifest.json").is_file():
            raise ModelError(path.name, f"no manifest.json in {path} (asr.model must be a model directory)")
        return path
    path = Path(models_dir) / cfg.model
    if not (path / "manifest.json").is_file():
        raise ModelError(cfg.model, f"not installed in {models_dir} — {_install_hint(cfg.model, models_dir)}")
    return path


def load_checked_manifest(model_dir: Path, *, fresh: bool = False) -> dict[str, Any]:
    """The manifest's JSON layout after its files were verified (sha256) when appliance.models can."""
    if _models is not None:
        manifest = _models.load_manifest(model_dir, fresh=fresh)
        return dict(manifest.to_json()) if hasattr(manifest, "to_json") else dict(manifest)
    path = model_dir / "manifest.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelError(model_dir.name, f"manifest unreadable: {e}", "manifest.json") from None
    for rel in data.get("files") or {}:  # presence only: hashing needs appliance.models
        if not (model_dir / rel).exists():
            raise ModelError(str(data.get("name") or model_dir.name), f"missing ({model_dir / rel})", rel)
    return data


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
