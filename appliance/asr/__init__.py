"""Speech recognition engines behind one interface."""

from appliance.asr.engine import NullTranscriber, Recognition, Transcriber

__all__ = ["NullTranscriber", "Recognition", "Transcriber"]
