"""What the panel, the LED and systemd's STATUS line learn about capture."""

from __future__ import annotations

from dataclasses import dataclass

STOPPED, OK, PAUSED, UNPLUGGED, ERROR = "stopped", "ok", "paused", "unplugged", "error"

# Messages are read by a clinician mid-visit: plain words, what is wrong and what happens next.
MSG_STOPPED = "Not recording"
MSG_FINISHED = "Finished replaying the recording"
MSG_PAUSED = "Paused — nothing is being recorded"
MSG_UNPLUGGED = "Microphone unplugged — waiting for it to come back"
MSG_NOT_FOUND = "Microphone not found — waiting for it to be plugged in"
MSG_CLIPPING = "Sound is too loud and distorted — move the microphone further away"


@dataclass(frozen=True)
class CaptureStatus:
    state: str  # "stopped" | "ok" | "paused" | "unplugged" | "error"
    device: str  # device or file name in use
    rate: int
    channels: int
    levels_dbfs: tuple[float, ...]  # per-channel RMS of the last ~100 ms (the panel's level meter)
    peak_dbfs: tuple[float, ...]
    clipping: bool  # peak >= cfg.clip_dbfs within the last couple of seconds
    silent_seconds: float  # continuous captured seconds below cfg.silence_dbfs
    muted_suspected: bool  # silent_seconds >= cfg.silence_alert_seconds
    message: str  # plain words for a clinician


def ok_message(device: str, *, clipping: bool, muted_suspected: bool, silent_seconds: float) -> str:
    """The message while capturing: the most useful warning first."""
    if muted_suspected:
        return f"No sound from the microphone for {int(silent_seconds)} s — is it muted?"
    if clipping:
        return MSG_CLIPPING
    return f"Listening ({device})"


def error_message(detail: str) -> str:
    return f"Microphone problem: {detail} — recording is not working; please tell IT"
