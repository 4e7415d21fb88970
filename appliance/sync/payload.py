"""Building the transcript payload of one session revision from the store.

The text is read through store.read_for_delivery (read_transcript's query and audit event, for a
batch of sessions in one transaction; actor "sync"), at exactly the revision the outbox is
delivering, so a resend carries the same content as the first send.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from appliance.asr.registry import ENGINES
from appliance.config.schema import ApplianceConfig
from appliance.models.manifest import ModelError, read_manifest_json
from appliance.store import SessionStore


def model_info(cfg: ApplianceConfig) -> list[dict[str, str]]:
    """Which models produced the transcripts, with versions from the installed manifests."""

    def version(model: str) -> str:
        try:
            return str(read_manifest_json(Path(cfg.paths.models_dir) / model).get("version") or "unknown")[:256]
        except ModelError:
            return "unknown"

    out = [{"role": "asr", "name": f"{cfg.asr.engine}:{cfg.asr.model}"[:256],
            "version": version(cfg.asr.model) if ENGINES.spec(cfg.asr.engine).needs_model else "none"}]
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
    """The scribe.transcript/1 message of `session_id` as of `revision` (the read is audited).
    `device_id`/`site` fill in for sessions stored without them."""
    [result] = build_payloads(store, [(session_id, revision)], models, device_id=device_id, site=site)
    if isinstance(result, Exception):
        raise result
    return result


def build_payloads(
    store: SessionStore, wanted: Sequence[tuple[str, int]], models: list[dict[str, str]],
    *, device_id: str = "", site: str = "",
) -> list[dict[str, Any] | Exception]:
    """build_payload() for many (session, revision) pairs: one transaction, one audited read per
    session (store.read_for_delivery). A pair that cannot be read gives its error instead."""
    out: list[dict[str, Any] | Exception] = []
    for (_, revision), result in zip(
        wanted, store.read_for_delivery(wanted, actor="sync", reason="send to clinic"), strict=True
    ):
        if isinstance(result, Exception):
            out.append(result)
            continue
        session, rows = result
        # Display names come with the rows (current names; they are not versioned).
        speakers = {r[3]: r[5] for r in rows if r[3]}
        out.append({
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
            "speakers": {label: speakers[label] for label in sorted(speakers)},
            "segments": [{"id": i, "start": a, "end": b, "speaker": spk, "text": t} for i, a, b, spk, t, _ in rows],
        })
    return out
