"""Plain text for pasting into an EHR: the note as its template wrote it, a header line naming the
visit and a last line saying whether (and by whom) it was signed."""

from __future__ import annotations

from clinic.export.document import ExportNote, header_line, signature_line


def to_text(doc: ExportNote) -> str:
    body = doc.text.strip("\n")
    return f"{header_line(doc)}\n\n{body}\n\n{signature_line(doc)}\n"
