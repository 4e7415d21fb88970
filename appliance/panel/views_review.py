"""Review screen: correct the transcript, confirm consent, choose templates, send, read notes."""

from __future__ import annotations

import re
from collections.abc import Callable

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from appliance.panel.context import PanelContext, ctx, plain_error
from appliance.panel.views_visit import offered_templates
from appliance.panel.wording import SENDING_OFF, sending_on, sync_status
from appliance.store import IllegalTransition, Segment, SegmentNotFound, SessionClosed, SessionNotFound, State

bp = Blueprint("review", __name__)
EDITABLE = {State.STOPPED, State.REVIEWED, State.QUEUED, State.SYNCED}


def _guard(session_id: str) -> ResponseReturnValue | None:
    pc = ctx()
    try:
        pc.store.get_session(session_id)
    except SessionNotFound:
        abort(404)
    if not pc.can_view(session_id):
        return redirect(url_for("auth.unlock", next=url_for("review.review", session_id=session_id)))
    return None


def _in_use(speakers: dict[str, str], segments: list[Segment]) -> dict[str, str]:
    """Only labels the transcript uses: a live label the hindsight pass at Stop replaced keeps
    its row (and maybe a name now worn by another label) but must not be offered for a swap."""
    used = {g.speaker for g in segments}
    return {label: name for label, name in speakers.items() if label in used}


@bp.get("/review/<session_id>")
def review(session_id: str) -> ResponseReturnValue:
    if (r := _guard(session_id)) is not None:
        return r
    pc = ctx()
    s = pc.store.get_session(session_id)
    if s.state in (State.RECORDING, State.PAUSED) and session_id == pc.live_id():
        return redirect(url_for("visit.recording"))
    segments, notes = [], []
    if s.state != State.PURGED:
        segments = pc.store.read_transcript(session_id, actor="panel", reason="review")
        notes = pc.store.read_notes(session_id, actor="panel", reason="review")
    sent = [o.revision for o in pc.store.outbox_items(session_id) if not o.superseded]
    can_send = s.state in (State.STOPPED, State.REVIEWED) or (s.state in (State.QUEUED, State.SYNCED)
                                                               and (not sent or max(sent) < s.revision))
    sync = sync_status(pc.sync)
    refining = pc.controller.refining(session_id)
    return render_template(
        "review.html", s=s, segments=segments, speakers=_in_use(pc.store.speakers(session_id), segments),
        notes=notes, refined=refined_words(pc, session_id, refining), refining=refining,
        templates=list(dict.fromkeys([*offered_templates(), *s.templates])), can_send=can_send,
        editable=s.state in EDITABLE, sent_revision=max(sent) if sent else None,
        sync_status=sync, sending_on=sending_on(pc.cfg, sync), sending_off=SENDING_OFF, screen="review",
    )


def refined_words(pc: PanelContext, session_id: str, refining: bool) -> str:
    """What Review says about the refined pass ("" when there is none for this visit); ``refining``:
    the pass has not handed this visit's text over yet."""
    if refining:
        return ("A second, more careful pass over this visit is still running; this page shows its text "
                "when it is done. You can review and edit now: lines you change keep your words.")
    events = pc.store.audit_events(session_id)
    refined = [e for e in events if e.action == "edit:refine"]
    if not refined:
        return ""
    last = refined[-1]
    undone = any(e.action == "edit:undo" and e.detail.get("undone") == "edit:refine" and e.id > last.id
                 for e in events)
    if undone:
        return "The second pass's text was undone: these are the lines as heard live."
    n = int(last.detail.get("segments", 0))
    return (f"A second, more careful pass over the whole visit improved {n} line{'s' if n != 1 else ''}. "
            "Undo gives back the text heard live.")


def _edit(session_id: str, what: Callable[[], object], done: str) -> ResponseReturnValue:
    """Run one edit; a stopped visit that was touched becomes 'reviewed'. Errors in plain words."""
    if (r := _guard(session_id)) is not None:
        return r
    pc = ctx()
    try:
        if pc.store.get_session(session_id).state not in EDITABLE:
            raise SessionClosed("This visit cannot be changed now.")
        what()
        if pc.store.get_session(session_id).state == State.STOPPED:
            pc.store.transition(session_id, State.REVIEWED, actor="panel")
        if done:
            flash(done, "ok")
    except (IllegalTransition, SegmentNotFound, SessionClosed, ValueError) as exc:
        flash(plain_error(exc), "error")
    anchor = request.form.get("anchor", "")
    url = url_for("review.review", session_id=session_id)
    return redirect(url + (f"#{anchor}" if re.fullmatch(r"[\w-]{1,80}", anchor) else ""))


@bp.post("/review/<session_id>/details")
def details(session_id: str) -> ResponseReturnValue:
    store = ctx().store
    chosen = [t for t in request.form.getlist("template") if t in offered_templates()
              or t in store.get_session(session_id).templates]

    def apply() -> None:
        store.set_name(session_id, request.form.get("name", "")[:80], actor="panel")
        store.set_consent(session_id, request.form.get("consent") == "yes", actor="panel")
        store.set_templates(session_id, chosen, actor="panel")
    return _edit(session_id, apply, "Visit details saved.")


@bp.post("/review/<session_id>/segment/<segment_id>/text")
def edit_text(session_id: str, segment_id: str) -> ResponseReturnValue:
    text = request.form.get("text", "")
    return _edit(session_id, lambda: ctx().store.edit_segment_text(session_id, segment_id, text, actor="panel"),
                 "Text corrected.")


@bp.post("/review/<session_id>/segment/<segment_id>/speaker")
def edit_speaker(session_id: str, segment_id: str) -> ResponseReturnValue:
    store = ctx().store
    label = request.form.get("speaker", "")
    if label == "confirm":  # the one tap on an unsure line's own speaker: it was right
        return _edit(session_id, lambda: store.confirm_speaker(session_id, segment_id, actor="panel"),
                     "Speaker confirmed.")
    if label == "new":
        nums = [int(m.group(1)) for lbl in store.speakers(session_id) if (m := re.fullmatch(r"S(\d+)", lbl))]
        label = f"S{max(nums, default=0) + 1}"
    elif label not in store.speakers(session_id):
        flash("Please choose one of the listed speakers.", "error")
        return redirect(url_for("review.review", session_id=session_id))
    return _edit(session_id, lambda: store.set_segment_speaker(session_id, segment_id, label, actor="panel"),
                 "Speaker changed.")


@bp.post("/review/<session_id>/segment/<segment_id>/delete")
def delete(session_id: str, segment_id: str) -> ResponseReturnValue:
    return _edit(session_id, lambda: ctx().store.delete_segment(session_id, segment_id, actor="panel"),
                 "Passage deleted.")


@bp.post("/review/<session_id>/swap")
def swap(session_id: str) -> ResponseReturnValue:
    a, b = request.form.get("a", ""), request.form.get("b", "")
    return _edit(session_id, lambda: ctx().store.swap_speakers(session_id, a, b, actor="panel"),
                 "Speakers swapped.")


@bp.post("/review/<session_id>/speaker-name")
def speaker_name(session_id: str) -> ResponseReturnValue:
    label, name = request.form.get("label", ""), request.form.get("name", "")[:40]
    if label not in ctx().store.speakers(session_id):
        flash("Please choose one of the listed speakers.", "error")
        return redirect(url_for("review.review", session_id=session_id))
    return _edit(session_id, lambda: ctx().store.set_speaker_name(session_id, label, name, actor="panel"),
                 "Speaker renamed.")


@bp.post("/review/<session_id>/send")
def send(session_id: str) -> ResponseReturnValue:
    if (r := _guard(session_id)) is not None:
        return r
    pc = ctx()
    try:
        if request.form.get("consent") == "yes":
            pc.store.set_consent(session_id, True, actor="panel")
        s = pc.store.get_session(session_id)
        if pc.cfg.panel.require_consent and not s.consent:
            flash("Please confirm that the patient agreed to the recording before sending it.", "error")
            return redirect(url_for("review.review", session_id=session_id))
        if not s.templates:
            flash("Please choose at least one note template before sending.", "error")
            return redirect(url_for("review.review", session_id=session_id))
        if s.state == State.STOPPED:
            pc.store.transition(session_id, State.REVIEWED, actor="panel")
        pc.store.enqueue(session_id, actor="panel")
        pc.sync.wake()  # deliver now rather than at the next outbox scan
        if sending_on(pc.cfg, sync_status(pc.sync)):
            flash("Queued for the clinic. It is sent as soon as the clinic server can be reached; "
                  "the note appears here when it comes back.", "ok")
        else:
            flash("Queued on this device. It stays here: sending to the clinic is off (see below).", "warning")
    except (IllegalTransition, SessionClosed, ValueError) as exc:
        flash(plain_error(exc), "error")
    return redirect(url_for("review.review", session_id=session_id))
