"""Log in with a user name and password (clinic/users.py), log out."""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, request, session, url_for

from clinic.users import UserError, authenticate
from clinic.web.context import web
from common.websafety import csrf_token, safe_target

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response | tuple[str, int]:
    target = safe_target(request.values.get("next"), url_for("sessions.index"))
    if request.method == "GET":
        return render_template("login.html", next=target, error="")
    ctx = web()
    name = request.form.get("username", "").strip().lower()
    try:
        user = authenticate(ctx.repo, name, request.form.get("password", ""), ctx.policy, ctx.clock)
    except UserError as exc:
        ctx.repo.audit(name[:64] or "anonymous", "login-refused", detail=str(exc))
        return render_template("login.html", next=target, error=str(exc), username=name), 401
    session.clear()  # a new session (and CSRF token) at login: no fixation
    session.permanent = True
    session.update(user=user.username, name=user.display_name, seen=ctx.clock())
    csrf_token()
    ctx.repo.audit(user.username, "login")
    return redirect(target)  # type: ignore[return-value]


@bp.post("/logout")
def logout() -> Response:
    web().repo.audit(str(session.get("user", "")), "logout")
    session.clear()
    return redirect(url_for("auth.login"))  # type: ignore[return-value]
