"""Start and Recording screens, and the commands behind their buttons."""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from appliance.daemon.controller import ControlError
from appliance.panel.context import ctx, plain_error
from appliance.store import IllegalTransition, SessionNotFound
from appliance.sync.announced import announced_path, load_announced

bp = Blueprint("visit", __name__)


def offered_templates() -> list[str]:
    """What the clinic announced it can write; the config's lists until it has announced anything."""
    cfg = ctx().cfg
    announced = load_announced(announced_path(cfg))
    if announced is not None:
        return announced
    return list(dict.fromkeys([*cfg.panel.templates, *cfg.panel.custom_templates]))


@bp.get("/")
def start_screen() -> str:
    pc = ctx()
    return render_template("start.html", templates=offered_templates(),
                           defaults=set(pc.cfg.panel.default_templates), unavailable=pc.controller.unavailable,
                           screen="start")


@bp.post("/start")
def start() -> ResponseReturnValue:
    pc = ctx()
    name = request.form.get("name", "").strip()[:80]
    chosen = [t for t in request.form.getlist("template") if t in offered_templates()]
    consent = request.form.get("consent") == "yes"
    if pc.cfg.panel.start_consent == "required" and not consent:
        flash("Please ask the patient whether they agree to the recording, and tick the box before starting.",
              "error")  # the form is shown again as it was filled in
        return render_template("start.html", templates=offered_templates(), defaults=set(chosen), name=name,
                               unavailable=pc.controller.unavailable, screen="start")
    try:
        pc.controller.start(name=name, templates=tuple(chosen), consent=consent, actor="panel")
    except (ControlError, IllegalTransition, ValueError) as exc:
        flash(plain_error(exc), "error")
        return redirect(url_for("visit.start_screen"))
    return redirect(url_for("visit.recording"))


@bp.get("/visit")
def recording() -> ResponseReturnValue:
    pc = ctx()
    s = pc.controller.session
    if s is None:
        return redirect(url_for("visit.start_screen"))
    # The live transcript is a view of the transcript like any other: read through the audited path.
    segments = pc.store.read_transcript(s.id, actor="panel", reason="live transcript")
    return render_template("visit.html", s=s, segments=segments, speakers=pc.store.speakers(s.id),
                           stream_pass=pc.streams.issue(s.id), screen="visit")


@bp.post("/visit/<action>")
def command(action: str) -> ResponseReturnValue:
    pc = ctx()
    if action not in ("pause", "resume", "stop"):
        abort(404)
    live = pc.controller.session
    page_visit = request.form.get("session", "")
    if page_visit and (live is None or live.id != page_visit):
        # The screen was showing a visit that ended elsewhere (the button, another screen): never act
        # on another visit; show the one it was about.
        return _visit_ended_elsewhere(page_visit)
    if action == "stop" and request.form.get("confirm") != "yes":
        # Stop cannot be undone: the panel's Stop asks first (the physical button does not).
        return redirect(url_for("visit.recording") + "#stop-ask")
    try:
        s = getattr(pc.controller, action)(actor="panel")
    except (ControlError, IllegalTransition) as exc:
        flash(plain_error(exc), "error")
        return redirect(url_for("visit.recording") if pc.controller.session else url_for("visit.start_screen"))
    if action == "stop":
        pc.room.set_recent(s.id)
        if pc.store.segment_count(s.id) == 0:
            flash("No speech was heard in this visit, so there is no transcript to review.", "warning")
        return redirect(url_for("review.review", session_id=s.id))
    assert live is not None
    return redirect(url_for("visit.recording"))


def _visit_ended_elsewhere(session_id: str) -> ResponseReturnValue:
    try:
        ctx().store.get_session(session_id)
    except SessionNotFound:
        flash("That visit is no longer on this device.", "error")
        return redirect(url_for("visit.start_screen"))
    flash("This visit was already stopped (with the button or on another screen). Here is its transcript.",
          "warning")
    return redirect(url_for("review.review", session_id=session_id))


@bp.post("/activity")
def activity() -> ResponseReturnValue:
    """The page was touched without a request (scrolling, typing): keep the panel unlocked."""
    return Response(status=204)


@bp.get("/favicon.ico")
def favicon() -> ResponseReturnValue:
    return Response(status=204)  # the kiosk has no tab bar; avoids a 404 in every log
