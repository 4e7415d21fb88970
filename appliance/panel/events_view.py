"""/events (Server-Sent Events) and /status (the same tick as JSON, for scripts and tests)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request, stream_with_context

from appliance.panel.context import PanelContext, ctx
from appliance.panel.events import without_names
from appliance.panel.lock import idle_s

bp = Blueprint("events", __name__)


def status_payload(pc: PanelContext) -> dict[str, Any]:
    """The status tick. Open to anyone who can reach the panel: no transcript text, no patient name."""
    snap = without_names(pc.controller.snapshot().as_dict())
    return {**snap, "unavailable": pc.controller.unavailable, "tools": pc.tools.status(),
            "locked": not pc.unlocked(), "idle_s": round(idle_s(pc), 1),
            "auto_lock_s": pc.cfg.panel.auto_lock_s, "speaker_names": live_speaker_names(pc)}


def live_speaker_names(pc: PanelContext) -> dict[str, str]:
    """What the live diarizer calls each label now ("S1" → "Clinician" once enrolled).

    Role words only (Clinician / Patient / Other / Speaker N), never a typed name; the
    store gets the final names at Stop, after the re-clustering.
    """
    try:
        return pc.controller.live_speaker_names()
    except Exception:  # labels are a nicety; the status tick must keep coming
        return {}


@bp.get("/events")
def stream() -> Response:
    pc = ctx()
    # Text only with the pass of an audited Recording screen load, and only while its visit is live.
    visit = pc.streams.visit_of(request.args.get("text"))
    text_for = visit if visit is not None and visit == pc.live_id() else None
    if text_for is not None:  # each (re)connection is a read of the transcript as it grows
        pc.store.audit("panel", "read", text_for, reason="live stream", remote=request.remote_addr or "")
    sub = pc.hub.subscribe(text_for)
    resp = Response(stream_with_context(pc.hub.stream(sub, lambda: status_payload(pc))),
                    mimetype="text/event-stream")
    resp.headers["X-Accel-Buffering"] = "no"
    return resp


@bp.get("/status")
def status() -> Response:
    return jsonify(status_payload(ctx()))
