"""The speech pipeline: VAD → recognition → stored segments."""

from appliance.speech.pipeline import FinalSegment, SpeechPipeline

__all__ = ["FinalSegment", "SpeechPipeline"]
