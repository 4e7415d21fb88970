"""Moonshine (base, English) on ONNX Runtime: converted at install from the moonshine-cpp wheel's
ORT files (convert.py), decoded per utterance by the project's own loop (runtime.py)."""

from appliance.asr.moonshine.convert import CONVERT_VERSION, convert_moonshine
from appliance.asr.moonshine.runtime import MoonshineOnnx

__all__ = ["CONVERT_VERSION", "MoonshineOnnx", "convert_moonshine"]
