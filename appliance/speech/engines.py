"""The recognizer and the VAD a config asks for, as the daemon, `appliance transcribe` and the
benchmarks build them (one place, so a file is transcribed exactly as a visit would be).

Kept apart from the daemon so tools that only transcribe do not import the panel, sync and
GPIO stacks (tens of MB of resident memory).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace

from appliance.asr.engine import Engine, NullTranscriber
from appliance.asr.factory import engine_for_model, make_engine
from appliance.config.schema import ApplianceConfig
from appliance.models import ModelError
from appliance.vad import EnergySegmenter, Segmenter, make_segmenter

log = logging.getLogger(__name__)


def build_engine(cfg: ApplianceConfig) -> tuple[Engine, str]:
    """The configured recognizer, or (timing-only engine, why) when it cannot be loaded.

    A missing or corrupt model must not crash the daemon in a loop: the panel stays up and
    says what is wrong, and Start is refused, since a visit without text would be lost.
    """
    try:
        return make_engine(cfg.asr, cfg.paths.models_dir), ""
    except Exception as exc:
        return NullTranscriber(), f"speech recognition is not available: {exc}"


def refiner_engine(cfg: ApplianceConfig, live: Engine | None = None) -> Engine | None:
    """The refined pass's recognizer (asr.refine_model with asr.refine_engine, else asr.engine); None
    when none is configured; ModelError (or the engine's own error) when it cannot be loaded. When it
    is the ``live`` engine's own model and that engine can share it (``twin()``: Whisper, Moonshine), the
    loaded model is shared."""
    if not cfg.asr.refine_model:
        return None
    engine = cfg.asr.refine_engine or cfg.asr.engine
    twin = getattr(live, "twin", None)
    if twin is not None and (engine, cfg.asr.refine_model) == (cfg.asr.engine, cfg.asr.model):
        return twin()
    if not cfg.asr.refine_engine:  # asr.engine if it runs the refined model, else one that does
        with contextlib.suppress(ModelError):  # (a model that cannot load is named by make_engine below)
            engine = engine_for_model(cfg.paths.models_dir, cfg.asr.refine_model, prefer=engine)
    return make_engine(replace(cfg.asr, engine=engine, model=cfg.asr.refine_model), cfg.paths.models_dir)


def build_refiner_engine(cfg: ApplianceConfig, live: Engine | None = None) -> Engine | None:
    """The daemon's: as refiner_engine, but a model that cannot load is logged and the room records
    without the refined pass (the live text is still the transcript)."""
    try:
        return refiner_engine(cfg, live)
    except Exception as exc:
        log.error("no refined pass: asr.refine_model %r cannot be loaded: %s", cfg.asr.refine_model, exc)
        return None


def build_segmenter(cfg: ApplianceConfig) -> Segmenter:
    """Silero as configured; the energy VAD if its model is missing (recording beats no recording)."""
    try:
        return make_segmenter(cfg.vad, models_dir=cfg.paths.models_dir)
    except ModelError as exc:
        log.error("Silero VAD unavailable, using the energy VAD instead: %s", exc)
        return EnergySegmenter(cfg.vad)
