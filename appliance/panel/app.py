"""The panel's Flask app factory: blueprints, CSRF, lock, LAN login and security headers."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from flask import Flask, Response, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from appliance.config.schema import ApplianceConfig
from appliance.daemon.controller import SessionController
from appliance.panel import views_admin, views_care, views_review, views_visit
from appliance.panel.context import PanelContext, ctx
from appliance.panel.events import EventHub
from appliance.panel.events_view import bp as events_bp
from appliance.panel.lock import Room, auto_lock
from appliance.panel.origin import back_to, is_loopback
from appliance.panel.pin import PinGuard
from appliance.panel.tools import MicTools
from appliance.panel.wording import plural, speaker_words, state_words
from appliance.sync.interface import TranscriptSync
from common.websafety import csrf_ok, csrf_token, security_headers

log = logging.getLogger(__name__)

OPEN_ENDPOINTS = {"static", "auth.unlock", "auth.unlock_screen", "auth.set_pin"}  # reachable without the LAN login


def pin_path(cfg: ApplianceConfig) -> Path:
    return Path(cfg.paths.state_dir) / "panel" / "pin.json"


def create_app(cfg: ApplianceConfig, controller: SessionController, sync: TranscriptSync, *,
               clock: Callable[[], float] = time.monotonic, tools: MicTools | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secrets.token_bytes(32),  # per process: a daemon restart logs everybody out
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=cfg.panel.lan,  # LAN mode is TLS only
        SESSION_COOKIE_NAME="panel",
        MAX_CONTENT_LENGTH=256 * 1024,
        TEMPLATES_AUTO_RELOAD=False,
    )
    hub = EventHub()
    room = Room(cfg.panel.auto_lock_s, clock)
    pins = PinGuard(pin_path(cfg), cfg.panel, clock=clock, alerts=controller.alerts)
    pc = PanelContext(cfg, controller, sync, pins, hub, room, tools or MicTools(cfg, controller), clock,
                      lan_requires_login=cfg.panel.lan)
    controller.add_listener(room.on_event)
    controller.add_listener(hub.publish)
    app.extensions["panel"] = pc

    app.register_blueprint(views_visit.bp)
    app.register_blueprint(views_review.bp)
    app.register_blueprint(views_care.bp)
    app.register_blueprint(views_admin.auth_bp)
    app.register_blueprint(views_admin.bp)
    app.register_blueprint(events_bp)

    app.before_request(auto_lock)
    app.before_request(_lan_login)
    app.before_request(_check_csrf)
    app.after_request(_security_headers)
    app.context_processor(_template_globals)
    app.register_error_handler(Exception, _error_page)
    app.jinja_env.filters.update(speaker_class=speaker_class, state_words=state_words, when=when,
                                 plural=plural, speaker_words=speaker_words)
    return app


# Werkzeug's own error pages are bare HTML in English jargon; these are the panel's words.
HTTP_ERROR_WORDS = {
    400: ("Please try again", "The panel could not understand what was sent. Nothing was changed."),
    403: ("Not allowed", "This cannot be done from here. Nothing was changed."),
    404: ("Not found", "That page does not exist on this panel."),
    405: ("Not possible here", "That page cannot be opened this way. Nothing was changed."),
    413: ("Too much at once", "That was too much text to save in one go. Nothing was changed; please shorten "
                              "it and try again."),
    500: ("Something went wrong", "The panel hit an error showing this page. The visit is safe. "
                                  "Please go back and try again."),
}


def speaker_class(label: str) -> int:
    """Colour slot 1–6 of a speaker label ("S1" → 1); 0 for unassigned or unusual labels."""
    label = str(label)
    if len(label) > 1 and label[0] == "S" and label[1:].isdigit():
        return (int(label[1:]) - 1) % 6 + 1
    return 0


def when(ts: float) -> str:
    return time.strftime("%d %b %H:%M", time.localtime(ts))


def _lan_login() -> ResponseReturnValue | None:
    """LAN mode: anybody not on the device itself logs in with the PIN before seeing anything."""
    pc = ctx()
    if not pc.lan_requires_login or is_loopback(request.remote_addr) or request.endpoint in OPEN_ENDPOINTS:
        return None
    if pc.unlocked():
        return None
    if request.endpoint == "events.stream":
        return Response("login needed", 401)
    return redirect(url_for("auth.unlock", next=request.full_path))


def _check_csrf() -> ResponseReturnValue | None:
    if csrf_ok():
        return None
    ctx().store.audit("panel", "panel:csrf-refused", None, path=request.path)
    log.warning("panel: state-changing request without a valid CSRF token refused: %s", request.path)
    return Response(render_template("error.html", title="Please try again",
                                    message="This page had expired. Nothing was changed; please go back "
                                            "and do it again."), 403)


def _security_headers(resp: Response) -> Response:
    return security_headers(resp, hsts=ctx().cfg.panel.lan)  # LAN mode is TLS only


def _template_globals() -> dict[str, object]:
    pc = ctx()
    return {"csrf_token": csrf_token, "pc": pc, "unlocked": pc.unlocked(), "cfg": pc.cfg,
            "live": pc.controller.snapshot().as_dict()}


def _error_page(exc: Exception) -> ResponseReturnValue:
    if isinstance(exc, HTTPException):
        code = exc.code or 500
        title, message = HTTP_ERROR_WORDS.get(code, HTTP_ERROR_WORDS[500])
        return render_template("error.html", title=title, message=message), code
    log.exception("panel error on %s", request.path)
    if request.method == "POST":  # never lose the visit: say what happened and go back
        live = ctx().live_id() is not None
        flash("That could not be done because of a problem on the device (it has been logged). "
              + ("The visit in progress is still being recorded. " if live else "Nothing recorded was lost. ")
              + "Please try again in a moment.", "error")
        parts = request.path.split("/")  # an edit on Review goes back to that visit's Review
        default = "/".join(parts[:3]) if len(parts) > 3 and parts[1] == "review" else url_for("visit.start_screen")
        return redirect(back_to(default))
    return render_template("error.html", title=HTTP_ERROR_WORDS[500][0], message=HTTP_ERROR_WORDS[500][1]), 500
