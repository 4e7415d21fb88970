"""What a reviewer does to a note: edit (a new version), sign, regenerate with another template or
generator, ask the assistant, export. Signed notes are never changed: an edit makes a new version."""

from __future__ import annotations

import re

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for

from clinic.export import EXTENSIONS, FORMATS, MEDIA_TYPES, ExportError
from clinic.export.cli import export_stored
from clinic.notes.service import write_note
from clinic.notes.transcript import from_payload
from clinic.store import StoredNote
from clinic.store.review import ReviewError
from clinic.web import llm
from clinic.web.context import display_name, username, web
from clinic.web.editing import edited_body, rendered_text, section_lines
from clinic.web.sessions import render_session

bp = Blueprint("notes", __name__)


def _note(note_id: int) -> StoredNote:
    note = web().repo.note(note_id)
    if note is None:
        abort(404)
    return note


def _to_note(n: StoredNote) -> Response:
    return redirect(url_for("sessions.session_page", session_id=n.session_id, note=n.id))  # type: ignore[return-value]


@bp.route("/notes/<int:note_id>/edit", methods=["GET", "POST"])
def edit(note_id: int) -> str | Response | tuple[str, int]:
    ctx = web()
    note = _note(note_id)
    if request.method == "GET" or note.superseded_by is not None:
        ctx.repo.audit(username(), "read-note", note.session_id, note.revision, f"note {note.id} (edit form)")
        error = "" if note.superseded_by is None else "This version has been replaced; edit the current one."
        return render_template("edit.html", note=note, sections=section_lines(note.body), error=error), (
            200 if not error else 409)
    edits = {key: request.form.get(f"section-{key}", "") for key, _, _ in section_lines(note.body)}
    body = edited_body(note.body, edits)
    try:
        new = ctx.repo.edit_note(note.id, rendered_text(body, ctx.registry), body, editor=display_name(),
                                 actor=username())
    except ReviewError as exc:
        return render_template("edit.html", note=note, sections=section_lines(note.body), error=str(exc)), 409
    return _to_note(new)


@bp.post("/notes/<int:note_id>/sign")
def sign(note_id: int) -> Response | tuple[str, int]:
    note = _note(note_id)
    if note.status != "ok":
        return render_template("error.html", title="Not signed",
                               message=f"There is no note to sign here, only a {note.status!r} result."), 409
    try:
        signed = web().repo.sign_note(note.id, signer=display_name(), actor=username())
    except ReviewError as exc:
        return render_template("error.html", title="Not signed", message=str(exc)), 409
    return _to_note(signed)


@bp.post("/sessions/<session_id>/regenerate")
def regenerate(session_id: str) -> Response | tuple[str, int]:
    return _regenerate(session_id, request.form.get("template", ""), request.form.get("generator", "builtin"))


@bp.post("/notes/<int:note_id>/clinician")
def set_clinician(note_id: int) -> Response | tuple[str, int]:
    """The reviewer's one-tap swap: this speaker is the clinician; the note is written again as a new
    version (a signed note stays as signed, superseded)."""
    note = _note(note_id)
    speaker = request.form.get("speaker", "")
    if not any(r.get("label") == speaker for r in note.body.get("roles", [])):
        return render_template("error.html", title="Not regenerated",
                               message=f"{speaker!r} is not a speaker of this note."), 400
    return _regenerate(note.session_id, note.template, "builtin", clinician=speaker)


def _regenerate(session_id: str, template: str, generator: str,
                clinician: str | None = None) -> Response | tuple[str, int]:
    ctx = web()
    meta = ctx.repo.session_meta(session_id) or abort(404)
    payload = ctx.repo.get(session_id, meta["revision"], actor=username(), reason="regenerate note")
    if payload is None:
        abort(404)
    transcript = from_payload(payload)
    if generator == "llm":
        known = ctx.registry.get(template)
        made = llm.generate_llm(ctx.cfg, transcript, known) if known else f"The clinic has no template {template!r}."
        if isinstance(made, str):
            return render_template("error.html", title="Not regenerated", message=made), 409
        note, text = made
    elif generator == "builtin":
        note, text = write_note(transcript, template, ctx.registry, clinician=clinician)
    else:
        return render_template("error.html", title="Not regenerated", message=f"Unknown generator {generator!r}."), 400
    stored = ctx.repo.add_note(session_id, meta["revision"], note.template, note.generator, note.generator_version,
                               note.status, text, note.to_dict())
    chosen = f"; clinician set to {clinician}" if clinician else ""
    ctx.repo.audit(username(), "regenerate-note", session_id, meta["revision"],
                   f"note {stored.id} ({stored.template}, {stored.generator}{chosen})")
    return _to_note(stored)


@bp.post("/notes/<int:note_id>/assist")
def assist(note_id: int) -> tuple[str, int]:
    ctx = web()
    note = _note(note_id)
    command = request.form.get("command", "")
    payload = ctx.repo.get(note.session_id, note.revision, actor=username(), reason=f"assistant: {command}")
    if payload is None:
        abort(404)
    suggestion = llm.assist(ctx.cfg, command, note.body, from_payload(payload), request.form.get("section") or None)
    return render_session(note.session_id, note.id, suggestion)


@bp.get("/notes/<int:note_id>/export/<fmt>")
def export(note_id: int, fmt: str) -> Response | tuple[str, int]:
    if fmt not in FORMATS:
        abort(404)
    note = _note(note_id)
    try:
        data = export_stored(web().repo, note, fmt, actor=username(), reason="clinic web view")
    except ExportError as exc:
        return render_template("error.html", title="Not exported", message=str(exc)), 409
    # A clinic's template name could hold quotes or other characters a header must not carry.
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{note.template.replace('&', 'and')}-{note.session_id[:8]}-{note.id}")
    name = f"{stem.strip('-')}.{EXTENSIONS[fmt]}"
    return Response(data, mimetype=MEDIA_TYPES[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
