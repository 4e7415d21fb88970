"""Plain words for what the panel shows: visit states, sending state, counts, speaker labels, sent versions."""

from __future__ import annotations

from typing import Any

from appliance.config.schema import ApplianceConfig
from appliance.store.edits import default_speaker_name
from appliance.sync.interface import TranscriptSync

SENDING_OFF = ("Sending to the clinic is off on this device, so transcripts stay here. "
               "Ask clinic IT to set up sending ([sync] in the device's config).")


def sync_status(sync: TranscriptSync) -> dict[str, Any]:
    """The sync component's status; a failing status says so."""
    try:
        return dict(sync.status())
    except Exception as exc:  # status must never break a screen
        return {"enabled": True, "connected": False, "last_error": str(exc)}


def sending_on(cfg: ApplianceConfig, status: dict[str, Any] | None) -> bool:
    return bool(status.get("enabled", cfg.sync.enabled)) if status is not None else cfg.sync.enabled


def sending_words(cfg: ApplianceConfig, status: dict[str, Any] | None) -> str:
    """One sentence for Settings: is sending on, reachable, how much waits, what went wrong."""
    waiting = int((status or {}).get("pending", 0))
    if not sending_on(cfg, status):
        return SENDING_OFF + (f" {plural(waiting, 'transcript')} waiting." if waiting else "")
    if status is None:
        return "On."
    where = status.get("broker") or "the clinic server"
    text = (f"Connected to the clinic server ({where})." if status.get("connected")
            else f"Cannot reach the clinic server ({where}) right now; transcripts wait here and go "
                 "automatically when it is back.")
    text += f" {plural(waiting, 'transcript')} waiting." if waiting else " Nothing waiting."
    if status.get("last_error"):
        text += f" Last problem: {status['last_error']}"
    return text


STATE_WORDS = {"idle": "Not started", "recording": "Recording", "paused": "Paused", "stopped": "To review",
               "reviewed": "Reviewed", "queued": "Queued for the clinic", "synced": "Sent to the clinic",
               "purged": "Deleted after retention"}


def state_words(state: str) -> str:
    """A visit's state as the panel names it ("stopped" → "To review")."""
    return STATE_WORDS.get(str(state), str(state))


def plural(n: int, word: str) -> str:
    """'1 visit', '2 visits' (regular English plurals only)."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def speaker_words(label: str) -> str:
    """A diarizer label a clinician can read: 'S2' → 'Speaker 2'."""
    return default_speaker_name(str(label))
