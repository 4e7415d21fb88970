"""Sessions by day and room, and one session: its transcript beside a note whose sentences point at
their evidence. Every view of a transcript and of a note writes an audit row."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from flask import Blueprint, abort, render_template, request

from clinic.store import StoredNote
from clinic.store.review import SessionOverview
from clinic.web import llm
from clinic.web.context import username, web

bp = Blueprint("sessions", __name__)
DAYS_SHOWN = (1, 7, 30, 365)


@bp.get("/")
def index() -> str:
    ctx = web()
    days = request.args.get("days", type=int) or 7
    days = days if days in DAYS_SHOWN else 7
    rows = ctx.repo.sessions_overview(since=ctx.clock() - days * 86400)
    room = request.args.get("room", "")
    rooms = sorted({r.room for r in rows})
    if room:
        rows = [r for r in rows if r.room == room]
    by_day: dict[str, dict[str, list[SessionOverview]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        day = time.strftime("%A %d %B %Y", time.localtime(r.started_at or r.received_at))
        by_day[day][r.room].append(r)
    return render_template("sessions.html", by_day=by_day, rooms=rooms, room=room, days=days,
                           days_shown=DAYS_SHOWN, clock=clock_time)


def clock_time(ts: float | None) -> str:
    return "" if ts is None else time.strftime("%H:%M", time.localtime(ts))


def stamp(ts: float | None) -> str:
    return "" if ts is None else time.strftime("%d %b %Y %H:%M", time.localtime(ts))


@bp.get("/sessions/<session_id>")
def session_page(session_id: str) -> str:
    return render_session(session_id, request.args.get("note", type=int))


def render_session(session_id: str, note_id: int | None, suggestion: llm.Suggestion | None = None,
                   status: int = 200) -> Any:
    ctx = web()
    meta = ctx.repo.session_meta(session_id)
    if meta is None:
        abort(404)
    versions = ctx.repo.notes(session_id)
    asked = [t.casefold() for t in meta["templates"]]  # tabs in the order the visit asked for them
    current = sorted((n for n in versions if n.superseded_by is None),
                     key=lambda n: (asked.index(n.template.casefold()) if n.template.casefold() in asked
                                    else len(asked), n.template, n.id))
    note = next((n for n in versions if n.id == note_id), None) if note_id else None
    if note_id and note is None:
        abort(404)
    note = note or (current[0] if current else None)
    revision = note.revision if note else meta["revision"]
    # The transcript the note was written from (its revision); the read is audited by the store.
    transcript = ctx.repo.get(session_id, revision, actor=username(), reason="clinic web view")
    if note is not None:
        ctx.repo.audit(username(), "read-note", session_id, note.revision, f"note {note.id} ({note.template})")
    speakers = (transcript or {}).get("speakers", {})
    history = [n for n in versions if note is not None and n.template == note.template]
    return render_template(
        "session.html", meta=meta, transcript=transcript, speakers=speakers, note=note, current=current,
        history=history, templates=ctx.registry.names(), generators=llm.GENERATORS, commands=llm.commands(),
        command_words=llm.COMMAND_WORDS, suggestion=suggestion, stamp=stamp, note_state=note_state,
    ), status


def note_state(n: StoredNote) -> str:
    if n.signed_at is not None:
        return f"signed by {n.signed_by} {stamp(n.signed_at)}"
    return "superseded" if n.superseded_by is not None else "draft"
