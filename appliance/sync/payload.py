"""Building the transcript payload of one session revision from the store.

The text is read through store.read_transcript (actor "sync", audited), at exactly the revision
the outbox is delivering, so a resend carries the same content as the first send.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from appliance.config.schema import ApplianceConfig
from appliance.store import SessionStore


def model_info(cfg: ApplianceConfig) -> list[dict[str, str]]:
    """Which models produced the transcripts, with versions from the installed manifests."""

    def version(model: str) -> str:
        try:
            manifest = json.loads((Path(cfg.paths.models_dir) / model / "manifest.json").read_text())
            return str(manifest.get("version") or "unknown")[:256]
        except (OSError, ValueError):
            return "unknown"

    out = [{"role": "asr", "name": f"{cfg.asr.engine}:{cfg.asr.model}"[:256],
            "version": version(cfg.asr.model) if cfg.asr.engine != "none" else "none"}]
    vad_model = "silero-vad" if cfg.vad.engine == "silero" else "energy"
    out.append({"role": "vad", "name": vad_model,
                "version": version(vad_model) if vad_model != "energy" else "builtin"})
    if cfg.diarize.enabled:
        out.append({"role": "diarize", "name": cfg.diarize.model[:256], "version": version(cfg.diarize.model)})
    return out


def build_payload(
    store: SessionStore, session_id: str, revision: int, models: list[dict[str, str]],
    *, device_id: str = "", site: str = "",
) -> dict[str, Any]:
    """The scribe.transcript/1 message of `session_id` as of `revision` (reads are audited).
    `device_id`/`site` fill in for sessions stored without them."""
    session = store.get_session(session_id)
    segments = store.read_transcript(session_id, actor="sync", reason="send to clinic", revision=revision)
    speakers = store.speakers(session_id)
    return {
        "schema": "scribe.transcript/1",
        "session_id": session.id,
        "revision": revision,
        "device_id": session.device_id or device_id,
        "site": session.site or site,
        "room": session.room,
        "clinician": session.clinician,
        "name": session.name,
        "started_at": session.started_at,
        "ended_at": session.ended_at,
        "templates": list(session.templates),
        "consent": session.consent,
        "models": models,
        "speakers": {label: speakers[label] for label in sorted({s.speaker for s in segments if s.speaker})
                     if label in speakers},
        "segments": [
            {"id": s.id, "start": s.start, "end": s.end, "speaker": s.speaker, "text": s.text} for s in segments
        ],
    }
