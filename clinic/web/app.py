"""The clinic web view's Flask app factory: blueprints, login, CSRF and security headers
(common/websafety.py, shared with the room panel)."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from datetime import timedelta

from flask import Flask, Response, redirect, render_template, request, session, url_for
from werkzeug.exceptions import HTTPException

from clinic.config import ClinicConfig
from clinic.notes.templates import TemplateRegistry
from clinic.store import TranscriptStore
from clinic.users import LoginPolicy
from clinic.web.context import WebContext, web
from common.websafety import csrf_ok, csrf_token, security_headers

log = logging.getLogger(__name__)
OPEN_ENDPOINTS = {"static", "auth.login"}


def create_app(cfg: ClinicConfig, repo: TranscriptStore, *, clock: Callable[[], float] = time.time,
               registry: TemplateRegistry | None = None) -> Flask:
    w = cfg.web
    tls = bool(w.tls_cert and w.tls_key)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secrets.token_bytes(32),  # per process: a restart logs everybody out
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=tls,
        SESSION_COOKIE_NAME="clinic",
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=w.idle_logout_min),
        MAX_CONTENT_LENGTH=1024 * 1024,
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.extensions["clinic-web"] = WebContext(
        cfg, repo, registry or TemplateRegistry(cfg.notes.templates_dir), clock,
        LoginPolicy(w.login_attempts, w.lockout_s, w.lockout_max_s))

    from clinic.web import auth, notes, sessions

    app.register_blueprint(auth.bp)
    app.register_blueprint(sessions.bp)
    app.register_blueprint(notes.bp)
    app.before_request(_login_required)
    app.before_request(_check_csrf)
    app.after_request(lambda resp: security_headers(resp, hsts=tls))
    app.context_processor(lambda: {"csrf_token": csrf_token, "user_name": session.get("name", "")})
    app.register_error_handler(Exception, _error_page)
    return app


def _login_required() -> Response | None:
    """Every page but the login page needs a user who still exists, is enabled, and was active lately."""
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    ctx = web()
    name, seen = session.get("user"), float(session.get("seen", 0))
    user = ctx.repo.user(name) if name else None
    idle = ctx.clock() - seen > ctx.cfg.web.idle_logout_min * 60
    if user is None or user.disabled or idle:
        for key in ("user", "name", "seen"):  # not the CSRF token: the login form in another tab still works
            session.pop(key, None)
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))  # type: ignore[return-value]
    session["seen"] = ctx.clock()
    return None


def _check_csrf() -> Response | None:
    if csrf_ok():
        return None
    web().repo.audit(str(session.get("user") or "anonymous"), "web:csrf-refused", detail=request.path)
    log.warning("clinic web: state-changing request without a valid CSRF token refused: %s", request.path)
    return Response(render_template("error.html", title="Please try again",
                                    message="This page had expired. Nothing was changed; please go back, "
                                            "reload and do it again."), 403)


def _error_page(exc: Exception) -> Response | tuple[str, int]:
    if isinstance(exc, HTTPException):
        if exc.code == 404:
            return render_template("error.html", title="Not found", message="That page does not exist."), 404
        return exc  # type: ignore[return-value]
    log.exception("clinic web error on %s", request.path)
    return render_template("error.html", title="Something went wrong",
                           message="The clinic web view hit an error (it has been logged). Nothing was lost; "
                                   "please go back and try again."), 500
