"""PIN entry and lock, and the PIN-protected History and Settings screens."""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from appliance.diarize.enrol import EnrolmentError, load_enrolment
from appliance.diarize.visit import enrolment_path
from appliance.panel.context import ctx
from appliance.panel.lock import UNLOCKED, mark_unlocked
from appliance.panel.origin import is_loopback, next_page
from appliance.panel.pin import PinError, duration_words
from appliance.panel.tools import ToolBusy
from appliance.panel.wording import sending_words, sync_status

auth_bp = Blueprint("auth", __name__)
bp = Blueprint("admin", __name__)
F = TypeVar("F", bound=Callable[..., Any])


def pin_required(view: F) -> F:
    @functools.wraps(view)
    def wrapper(*a: Any, **kw: Any) -> Any:
        if not ctx().unlocked():
            return redirect(url_for("auth.unlock", next=request.path))
        return view(*a, **kw)
    return wrapper  # type: ignore[return-value]


# -- PIN ----------------------------------------------------------------------------------------

@auth_bp.get("/unlock")
def unlock_screen() -> str:
    pc = ctx()
    wait = pc.pins.lockout_remaining()
    return render_template("unlock.html", next=next_page(), first_run=not pc.pins.is_set,
                           may_set=is_loopback(request.remote_addr), wait=duration_words(wait) if wait else "",
                           screen="unlock")


@auth_bp.post("/unlock")
def unlock() -> ResponseReturnValue:
    pc = ctx()
    try:
        pc.pins.check(request.form.get("pin", ""), over_network=not is_loopback(request.remote_addr))
    except PinError as exc:
        pc.store.audit("panel", "panel:pin-failed", None, remote=request.remote_addr or "",
                       **({"lockout_s": exc.lockout_s} if exc.lockout_s else {}))
        flash(str(exc), "error")
        return redirect(url_for("auth.unlock_screen", next=next_page()))
    mark_unlocked(pc)
    pc.store.audit("panel", "panel:unlock", None, remote=request.remote_addr or "")
    return redirect(next_page())


@auth_bp.post("/pin")
def set_pin() -> ResponseReturnValue:
    """First run (on the device itself only), or a change by an unlocked clinician."""
    pc = ctx()
    first = not pc.pins.is_set
    if first and not is_loopback(request.remote_addr):
        flash("The first PIN can only be set on the device's own screen.", "error")
        return redirect(url_for("auth.unlock_screen"))
    if not first:
        if not pc.unlocked():
            return redirect(url_for("auth.unlock_screen", next=url_for("admin.settings")))
        try:
            pc.pins.check(request.form.get("current", ""))
        except PinError as exc:
            flash(f"Current PIN: {exc}", "error")
            return redirect(url_for("admin.settings") + "#change-pin")
    try:
        pc.pins.set_pin(request.form.get("pin", ""), request.form.get("confirm", ""))
    except PinError as exc:
        flash(str(exc), "error")
        return redirect(url_for("auth.unlock_screen", next=next_page()) if first
                        else url_for("admin.settings") + "#change-pin")
    pc.store.audit("panel", "panel:pin-set" if first else "panel:pin-changed")
    mark_unlocked(pc)
    flash("PIN saved.", "ok")
    return redirect(next_page() if first else url_for("admin.settings") + "#change-pin")


@auth_bp.post("/lock")
def lock() -> ResponseReturnValue:
    pc = ctx()
    pc.room.lock()
    session.pop(UNLOCKED, None)
    pc.store.audit("panel", "panel:lock")
    return redirect(url_for("visit.start_screen"))


# -- History --------------------------------------------------------------------------------------

@bp.get("/history")
@pin_required
def history() -> str:
    pc = ctx()
    sessions = pc.store.list_sessions()
    notes = {s.id: pc.store.note_count(s.id) for s in sessions}
    return render_template("history.html", sessions=sessions, notes=notes, live_id=pc.live_id(), screen="history")


# -- Settings -------------------------------------------------------------------------------------

def _storage(pc: Any) -> dict[str, Any]:
    db = Path(pc.cfg.store_path)
    used = sum(p.stat().st_size for p in db.parent.glob(db.name + "*") if p.is_file())
    disk = shutil.disk_usage(db.parent)
    return {"db_mb": used / 1e6, "free_gb": disk.free / 1e9, "total_gb": disk.total / 1e9,
            "sessions": len(pc.store.list_sessions())}


def _enrolment(pc: Any) -> dict[str, str]:
    path = enrolment_path(pc.cfg)
    if not path.exists():
        return {"state": "none", "text": "No clinician voice is enrolled yet."}
    try:
        e = load_enrolment(path)
    except EnrolmentError as exc:
        return {"state": "bad", "text": str(exc)}
    return {"state": "ok", "text": f"Enrolled: {e.clinician or 'clinician'} ({e.created[:10]})."}


@bp.get("/settings")
@pin_required
def settings() -> str:
    pc = ctx()
    speakers = pc.controller.speakers
    return render_template(
        "settings.html", screen="settings", storage=_storage(pc), enrolment=_enrolment(pc),
        sending=sending_words(pc.cfg, sync_status(pc.sync)),
        diarization=speakers.describe() if speakers is not None else "off",
        tools=pc.tools.status(),
    )


@bp.post("/settings/mic-test")
@pin_required
def mic_test() -> ResponseReturnValue:
    try:
        ctx().tools.start_mic_test()
    except ToolBusy as exc:
        flash(str(exc), "error")
    return redirect(url_for("admin.settings") + "#mic")


@bp.post("/settings/enrol")
@pin_required
def enrol() -> ResponseReturnValue:
    try:
        ctx().tools.start_enrolment(request.form.get("clinician", ""))
    except (ToolBusy, ValueError) as exc:
        flash(str(exc), "error")
    return redirect(url_for("admin.settings") + "#enrol")
