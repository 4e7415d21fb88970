"""`clinic export SESSION --format text|pdf|fhir [--out F]`: a stored note version, audited."""

from __future__ import annotations

import argparse
import sys

from clinic.export import FORMATS, ExportError, export
from clinic.export.document import from_stored
from clinic.store import StoredNote, TranscriptStore


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ex = sub.add_parser("export", help="a stored note as plain text for an EHR, a PDF, or a FHIR R4 document "
                        "Bundle (writes an audit row)")
    ex.add_argument("session_id")
    ex.add_argument("--format", default="text", choices=FORMATS)
    ex.add_argument("--template", help="which of the session's notes (default: its only current note)")
    ex.add_argument("--note", type=int, metavar="ID", help="one note version by id (older versions too)")
    ex.add_argument("--out", help="write here instead of stdout")
    ex.add_argument("--reason", default="", help="why it is exported, kept in the audit row")


def pick_note(repo: TranscriptStore, session_id: str, template: str | None = None,
              note_id: int | None = None) -> StoredNote:
    """The note version to export, or ExportError saying why there is none (or which to choose)."""
    if note_id is not None:
        note = repo.note(note_id)
        if note is None or note.session_id != session_id:
            raise ExportError(f"session {session_id} has no note {note_id}")
        return note
    current = repo.notes(session_id, current_only=True)
    if template:
        current = [n for n in current if n.template.casefold() == template.casefold()]
    if len(current) == 1:
        return current[0]
    if not current:
        what = f" with template {template!r}" if template else ""
        raise ExportError(f"session {session_id} has no current note{what}")
    raise ExportError(f"session {session_id} has {len(current)} current notes; choose one with --template "
                      f"({', '.join(n.template for n in current)})")


def export_stored(repo: TranscriptStore, note: StoredNote, fmt: str, *, actor: str, reason: str = "") -> bytes:
    """The note in `fmt`; the export is audited (it carries the note out of the clinic store)."""
    data = export(from_stored(note, repo.session_meta(note.session_id, note.revision)), fmt)
    repo.audit(actor, "export", note.session_id, note.revision,
               f"note {note.id} ({note.template}) as {fmt}" + (f": {reason}" if reason else ""))
    return data


def run(args: argparse.Namespace, repo: TranscriptStore, actor: str) -> int:
    from clinic.notes.cli import write_output

    try:
        note = pick_note(repo, args.session_id, args.template, args.note)
        data = export_stored(repo, note, args.format, actor=actor, reason=args.reason)
    except ExportError as exc:
        print(f"clinic: {exc}", file=sys.stderr)
        return 2
    return write_output(data, args.out)
