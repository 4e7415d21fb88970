"""Voice activity detection: cutting the 16 kHz mono stream into utterances."""

from appliance.vad.energy import EnergySegmenter
from appliance.vad.utterance import Segmenter, Utterance

__all__ = ["EnergySegmenter", "Segmenter", "Utterance", "make_segmenter"]


def make_segmenter(cfg):  # type: ignore[no-untyped-def]
    """The segmenter named by ``cfg.engine`` (a VadConfig)."""
    if cfg.engine == "energy":
        return EnergySegmenter(cfg)
    raise ValueError(f"unknown VAD engine {cfg.engine!r}")
