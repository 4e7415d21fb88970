"""A note as a PDF (reportlab). The built-in PDF fonts only have the Windows-1252 (Latin-1 and a few
typographic marks) characters; anything else would print as a black box, or not at all. Such
characters are folded to a plain equivalent where one exists ("ł" → "l", "≥" → ">=") and shown as
"[?]" otherwise, with a line at the end saying so: never dropped silently, never a crash."""

from __future__ import annotations

import io
import unicodedata
from xml.sax.saxutils import escape

from clinic.export.document import ExportNote, header_line, signature_line, when

UNSHOWABLE = "[?]"
# Plain equivalents for characters NFKD cannot fold into Windows-1252.
_FOLD = {"ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ı": "i", "ħ": "h", "≥": ">=", "≤": "<=", "≈": "~",
         "→": "->", "←": "<-", "−": "-", "‐": "-", "‑": "-", "≠": "!=", "✓": "v"}


def _showable(ch: str) -> bool:
    try:
        ch.encode("cp1252")
        return True
    except UnicodeEncodeError:
        return False


def pdf_safe(text: str) -> tuple[str, int]:
    """`text` with every character the built-in fonts cannot show folded or replaced by [?]; and
    how many were replaced."""
    out, replaced = [], 0
    for ch in text:
        if _showable(ch) or ch in "\n\t":
            out.append(ch)
            continue
        folded = _FOLD.get(ch) or "".join(c for c in unicodedata.normalize("NFKD", ch)
                                          if not unicodedata.combining(c))
        if folded and all(_showable(c) for c in folded):
            out.append(folded)
        else:
            out.append(UNSHOWABLE)
            replaced += 1
    return "".join(out), replaced


def to_pdf(doc: ExportNote) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

    styles = getSampleStyleSheet()
    replaced = 0

    def para(text: str, style: str) -> Paragraph:
        nonlocal replaced
        safe, n = pdf_safe(text)
        replaced += n
        return Paragraph(escape(safe), styles[style])  # Paragraph reads markup: escape the note's text

    story = [para(doc.template, "Title"), para(header_line(doc), "Normal"), Spacer(1, 4 * mm)]
    if doc.has_content:
        for section in doc.sections:
            story.append(para(section.title, "Heading2"))
            story.extend(para(sentence, "BodyText") for sentence in section.sentences)
    else:
        story.extend(para(line, "BodyText") for line in doc.text.splitlines() if line.strip())
    story += [Spacer(1, 6 * mm), para(signature_line(doc), "Heading4")]
    if doc.edited_by:
        story.append(para(f"Edited by {doc.edited_by}.", "Italic"))
    story.append(para(f"Written by {doc.generator} {doc.generator_version} on {when(doc.created_at)}; "
                      f"session {doc.session_id} revision {doc.revision}.", "Italic"))
    if replaced:
        story.append(para(f"{replaced} character(s) the PDF fonts cannot show are printed as {UNSHOWABLE}; "
                          "the text and FHIR exports have them.", "Italic"))
    out = io.BytesIO()
    title, _ = pdf_safe(f"{doc.template} {doc.visit_name}".strip())
    SimpleDocTemplate(out, pagesize=A4, title=title, author="exam-room scribe", leftMargin=20 * mm,
                      rightMargin=20 * mm, topMargin=18 * mm, bottomMargin=18 * mm).build(story)
    return out.getvalue()
