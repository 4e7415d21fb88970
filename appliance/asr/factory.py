"""Build the recognition engine the config asks for, from a verified installed model.

Every failure a clinic IT person can fix (model not installed, files damaged, a model made
for another engine) raises `ModelError` with the command or setting that fixes it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from appliance.asr.engine import Engine, NullTranscriber, Recognition, Transcriber, transcribe_with
from appliance.asr.registry import ENGINES, engines_running, made_for
from appliance.asr.vocabulary import VocabularyError
from appliance.config.schema import AsrConfig
from appliance.models import ModelError, load_manifest, resolve_model

log = logging.getLogger(__name__)


def resolve_model_dir(cfg: AsrConfig, models_dir: str) -> Path:
    """cfg.model as a directory: an absolute path, or a name under models_dir."""
    return resolve_model(models_dir, cfg.model)


def engine_for_model(models_dir: str, model: str, prefer: str = "") -> str:
    """The engine that runs an installed model: ``prefer`` if it can, else the first registered one."""
    manifest = load_manifest(resolve_model(models_dir, model))
    engines = engines_running(manifest.to_json())
    if not engines:
        raise ModelError(manifest.name, f"no engine here runs it (engines: {', '.join(ENGINES)})")
    return prefer if prefer in engines else engines[0]


def make_engine(cfg: AsrConfig, models_dir: str, *, fresh: bool = False) -> Engine:
    """The engine for cfg.engine running cfg.model. ``fresh=True`` rehashes the model's files."""
    spec = ENGINES.spec(cfg.engine)
    if not spec.needs_model:
        return spec.build(cfg, None)
    manifest = load_manifest(resolve_model_dir(cfg, models_dir), fresh=fresh)
    layout = manifest.to_json()
    if not spec.runs(layout):
        made = " / ".join(made_for(layout)) or "an unnamed engine"
        others = engines_running(layout)
        fix = (f"set asr.engine to {' or '.join(others)}" if others
               else f"no engine here runs it (asr.engine runs {', '.join(ENGINES)})")
        raise ModelError(manifest.name, f"made for {made}, but asr.engine is {cfg.engine!r}: {fix}, "
                                        f"or set asr.model to a model made for {cfg.engine}")
    try:
        engine = spec.build(cfg, manifest)
    except VocabularyError:
        raise  # a config problem (asr.vocabulary_file), not the model's
    except ImportError as e:  # an optional engine's package (vosk, sherpa-onnx) is not installed
        raise ModelError(manifest.name, f"the {cfg.engine} engine is not available here: {e}") from e
    except (FileNotFoundError, ValueError) as e:  # sherpa ManifestError, missing files, bad layout
        raise ModelError(manifest.name, f"cannot be loaded by {cfg.engine}: {e}") from e
    if engine.abilities != spec.abilities:  # the pipeline trusts them: a builder must not drift from its entry
        raise TypeError(f"{cfg.engine} built {engine.name} with abilities {engine.abilities}, "
                        f"registered {spec.abilities}")
    return engine


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
