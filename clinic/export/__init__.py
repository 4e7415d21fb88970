"""Exports of a note: plain text for an EHR, PDF, FHIR R4 document Bundle (docs/clinic-web.md)."""

from __future__ import annotations

from clinic.export.document import ExportError, ExportNote, ExportSection

FORMATS = ("text", "pdf", "fhir")
MEDIA_TYPES = {"text": "text/plain; charset=utf-8", "pdf": "application/pdf", "fhir": "application/fhir+json"}
EXTENSIONS = {"text": "txt", "pdf": "pdf", "fhir": "json"}


def export(doc: ExportNote, fmt: str) -> bytes:
    """The note in `fmt`; ExportError if it cannot be (e.g. FHIR of a note without content)."""
    if fmt == "text":
        from clinic.export.text import to_text

        return to_text(doc).encode("utf-8")
    if fmt == "pdf":
        from clinic.export.pdf import to_pdf

        return to_pdf(doc)
    if fmt == "fhir":
        from clinic.export.fhir import to_json

        return to_json(doc).encode("utf-8")
    raise ExportError(f"unknown export format {fmt!r} (one of {', '.join(FORMATS)})")


__all__ = ["EXTENSIONS", "FORMATS", "MEDIA_TYPES", "ExportError", "ExportNote", "ExportSection", "export"]
