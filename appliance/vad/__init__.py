"""Voice activity detection: cutting the 16 kHz mono stream into utterances."""

from __future__ import annotations

from pathlib import Path

from appliance.config.schema import PathsConfig, VadConfig
from appliance.vad.energy import EnergySegmenter
from appliance.vad.utterance import Segmenter, Utterance

__all__ = ["EnergySegmenter", "Segmenter", "Utterance", "make_segmenter"]


def make_segmenter(cfg: VadConfig, models_dir: Path | str | None = None) -> Segmenter:
    """The segmenter named by ``cfg.engine``.

    Silero needs the installed `silero-vad` model under ``models_dir`` (default: the
    config default paths.models_dir); it is sha256-verified here and a missing or
    corrupt model raises ModelError telling to run `appliance models install`.
    """
    if cfg.engine == "energy":
        return EnergySegmenter(cfg)
    if cfg.engine == "silero":
        from appliance.vad.silero import SileroSegmenter  # onnxruntime only when asked for

        return SileroSegmenter.from_models_dir(cfg, models_dir if models_dir is not None else PathsConfig().models_dir)
    raise ValueError(f"unknown VAD engine {cfg.engine!r}")
