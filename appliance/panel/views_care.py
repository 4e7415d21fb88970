"""What a clinician needs around a visit: consent while recording, discarding a visit, and the
Review tools beyond one line (undo, split, join, add a line, "this speaker is me")."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from appliance.panel.context import ctx, plain_error
from appliance.panel.lock import RECENT
from appliance.panel.pin import PinError
from appliance.panel.views_admin import pin_required
from appliance.panel.views_review import _edit, _guard
from appliance.panel.wording import state_words
from appliance.store import IllegalTransition, Segment, Session, SessionNotFound, State, is_allowed

bp = Blueprint("care", __name__)

# Why a visit is thrown away: short codes (audited), shown to the clinician in words.
DISCARD_REASONS = {"wrong-patient": "Wrong patient or wrong visit",
                   "consent-withdrawn": "The patient withdrew consent",
                   "test": "A test or an accidental recording"}
UNDO_WORDS = {"edit:text": "the corrected words", "edit:speaker": "the speaker change",
              "edit:swap-speakers": "the speaker swap", "edit:delete": "the deleted passage",
              "edit:split": "the split line", "edit:merge": "the joined lines", "edit:insert": "the added line",
              "edit:refine": "the second pass's text"}


@bp.app_template_filter()
def visit_state(s: Session) -> str:
    """A visit's state in words; a purged one says whether retention or a clinician deleted it."""
    if s.state == State.PURGED and s.purge_reason == "discarded":
        return "Discarded"
    return state_words(s.state)


NOTE_WORDS = {"requested": "requested", "generating": "being written", "ready": "ready"}


@bp.app_template_global()
def note_status(session_id: str) -> list[tuple[str, str, str]]:
    """(template, status code, words) of each note the visit asked the clinic for; empty until sent."""
    return [(t, code, NOTE_WORDS[code]) for t, code in ctx().store.note_status(session_id).items()]


@bp.app_template_global()
def unsure_words(segment: Segment) -> list[tuple[str, bool]] | None:
    """The line's words, each with whether the recogniser's confidence in it is below
    panel.low_confidence; None when there are no per-word confidences (edited, or not given)."""
    if not segment.word_confidence or len(segment.word_confidence) != len(segment.text.split()):
        return None
    threshold = ctx().cfg.panel.low_confidence
    return [(word, c < threshold) for word, c in zip(segment.text.split(), segment.word_confidence, strict=True)]


@bp.app_template_global()
def undo_words(session_id: str) -> str | None:
    """What Undo on Review would take back, in words (None: nothing to undo)."""
    action = ctx().store.undoable_edit(session_id)
    return UNDO_WORDS.get(action, "the last change") if action else None


@bp.app_template_global()
def last_visit() -> Session | None:
    """The visit just stopped, while this browser may open it without the PIN (see lock.py; asking
    takes nothing up) and it is still to be reviewed or sent."""
    pc = ctx()
    sid = pc.room.recent
    if sid is None or not (pc.unlocked() or pc.room.recent_open(sid) or session.get(RECENT) == [sid, pc.room.epoch]):
        return None
    try:
        s = pc.store.get_session(sid)
    except SessionNotFound:
        return None
    return s if s.state in (State.STOPPED, State.REVIEWED) else None


@bp.app_template_global()
def waiting_counts() -> dict[str, int]:
    """How many visits on the device are still to review, and how many wait to be sent."""
    store = ctx().store
    return {"review": len(store.list_sessions([State.STOPPED, State.REVIEWED])),
            "queued": len(store.list_sessions([State.QUEUED]))}


@bp.app_template_global()
def consent_given(session_id: str) -> bool:
    """From the store: the controller's copy of the live visit is not refreshed by a details edit."""
    return ctx().store.get_session(session_id).consent


@bp.post("/visit/consent")
def live_consent() -> ResponseReturnValue:
    """The warning on the Recording screen: the patient has now agreed."""
    pc = ctx()
    sid = pc.live_id()
    if sid is not None:
        pc.store.set_consent(sid, True, actor="panel")
        flash("Consent recorded.", "ok")
    return redirect(url_for("visit.recording"))


# -- discard -----------------------------------------------------------------------------------

@bp.get("/review/<session_id>/discard")
def discard_screen(session_id: str) -> ResponseReturnValue:
    if (r := _guard(session_id)) is not None:
        return r
    s = ctx().store.get_session(session_id)
    return render_template("discard.html", s=s, reasons=DISCARD_REASONS, screen="discard",
                           allowed=is_allowed(s.state, State.PURGED))


@bp.post("/review/<session_id>/discard")
def discard(session_id: str) -> ResponseReturnValue:
    """Delete a visit from the device now: the PIN is asked again even when the panel is unlocked
    (a wrong PIN counts towards the lockout), and the reason goes into the audit trail."""
    if (r := _guard(session_id)) is not None:
        return r
    pc = ctx()
    why = request.form.get("why", "")
    again = redirect(url_for("care.discard_screen", session_id=session_id))
    if why not in DISCARD_REASONS:
        flash("Please choose why this visit is being discarded.", "error")
        return again
    try:
        pc.pins.check(request.form.get("pin", ""))
    except PinError as exc:
        pc.store.audit("panel", "panel:pin-failed", session_id, remote=request.remote_addr or "", purpose="discard")
        flash(str(exc), "error")
        return again
    try:
        pc.store.discard(session_id, actor="panel", why=why)
    except (IllegalTransition, SessionNotFound) as exc:
        flash(plain_error(exc), "error")
        return again
    if pc.room.recent == session_id:
        pc.room.recent = None
    flash("The visit was discarded: its transcript, notes and name are deleted from this device.", "ok")
    return redirect(url_for("visit.start_screen"))


# -- Review tools ------------------------------------------------------------------------------

@bp.post("/review/<session_id>/undo")
def undo(session_id: str) -> ResponseReturnValue:
    store = ctx().store
    what = UNDO_WORDS.get(store.undoable_edit(session_id) or "", "the last change")
    return _edit(session_id, lambda: store.undo_last_edit(session_id, actor="panel"), f"Undone: {what}.")


@bp.post("/review/<session_id>/segment/<segment_id>/split")
def split(session_id: str, segment_id: str) -> ResponseReturnValue:
    try:
        at = int(request.form.get("at", ""))
    except ValueError:
        abort(400)
    return _edit(session_id, lambda: ctx().store.split_segment(session_id, segment_id, at, actor="panel"),
                 "Line split in two.")


@bp.post("/review/<session_id>/segment/<segment_id>/merge")
def merge(session_id: str, segment_id: str) -> ResponseReturnValue:
    return _edit(session_id, lambda: ctx().store.merge_with_next(session_id, segment_id, actor="panel"),
                 "Lines joined.")


@bp.post("/review/<session_id>/segment/<segment_id>/insert")
def insert(session_id: str, segment_id: str) -> ResponseReturnValue:
    store = ctx().store
    label, text = request.form.get("speaker", ""), request.form.get("text", "")
    if label not in store.speakers(session_id):
        flash("Please choose who said it.", "error")
        return redirect(url_for("review.review", session_id=session_id))
    return _edit(session_id, lambda: store.insert_segment(session_id, segment_id, label, text, actor="panel"),
                 "Line added.")


@bp.post("/review/<session_id>/me")
def speaker_is_me(session_id: str) -> ResponseReturnValue:
    label = request.form.get("speaker", "")
    return _edit(session_id, lambda: ctx().store.speaker_is_me(session_id, label, actor="panel"),
                 "Your lines are marked Clinician, the others Patient.")


# -- History search ----------------------------------------------------------------------------

@bp.get("/history/search")
@pin_required
def history_search() -> str:
    """Visits whose transcript or name holds the words; PIN-gated like History, audited as a read."""
    pc = ctx()
    query = " ".join(request.args.get("q", "").split())[:100]
    hits = pc.store.search(query, actor="panel", reason="history search") if query else None
    return render_template("history_search.html", query=query, hits=hits, live_id=pc.live_id(), screen="history")
