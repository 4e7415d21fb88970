"""Whisper converted to ONNX and run on ONNX Runtime with the project's own decoder."""

from appliance.asr.whisper.export import EXPORT_VERSION, export_whisper
from appliance.asr.whisper.runtime import WhisperOnnx

__all__ = ["EXPORT_VERSION", "WhisperOnnx", "export_whisper"]
