"""A note as a FHIR R4 `document` Bundle: a Composition (status `preliminary` until signed, `final`
once signed; LOINC document and section codes; each section's narrative as XHTML) followed by the
Practitioner who wrote or signed it and, when the visit was named, a Patient.

Checked twice before it leaves: structurally with fhir.resources' R4B models (they accept any code
and any `div` text), then by our own rules for what those models do not check: the LOINC codes,
the status, the XHTML namespace of every narrative, and that every reference resolves in the Bundle.
"""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET
from typing import Any
from xml.sax.saxutils import escape

from clinic.export.document import ExportError, ExportNote, iso

LOINC = "http://loinc.org"
XHTML = "http://www.w3.org/1999/xhtml"
_IDS = uuid.UUID("6f1c2d1e-5a7b-4c3e-9d2f-1b0e8a7c6d5e")  # namespace of our uuid5 resource ids

# Document type by template name; a clinic's own template is a generic "Note".
DOCUMENT_CODES: dict[str, tuple[str, str]] = {
    "soap": ("11506-3", "Progress note"),
    "progress note": ("11506-3", "Progress note"),
    "h&p": ("34117-2", "History and physical note"),
    "patient instructions": ("69730-0", "Instructions"),
}
GENERIC_NOTE = ("34109-9", "Note")

# Section codes by the section's key in the built-in templates (clinic/notes/templates/*.j2).
SECTION_CODES: dict[str, tuple[str, str]] = {
    "chief_complaint": ("10154-3", "Chief complaint Narrative - Reported"),
    "hpi": ("10164-2", "History of Present illness Narrative"),
    "interval_history": ("10164-2", "History of Present illness Narrative"),
    "subjective": ("61150-9", "Subjective Narrative"),
    "history": ("11348-0", "History of Past illness Narrative"),
    "medications": ("10160-0", "History of Medication use Narrative"),
    "medicines": ("10160-0", "History of Medication use Narrative"),
    "allergies": ("48765-2", "Allergies and adverse reactions Document"),
    "ros": ("10187-3", "Review of systems Narrative - Reported"),
    "vitals": ("8716-3", "Vital signs"),
    "exam": ("29545-1", "Physical findings Narrative"),
    "objective": ("61149-1", "Objective Narrative"),
    "results": ("30954-2", "Relevant diagnostic tests/laboratory data Narrative"),
    "assessment": ("51848-0", "Evaluation note"),
    "found": ("51848-0", "Evaluation note"),
    "assessment_plan": ("51847-2", "Evaluation + Plan note"),
    "plan": ("18776-5", "Plan of care note"),
    "next": ("18776-5", "Plan of care note"),
    "instructions": ("69730-0", "Instructions"),
    "todo": ("69730-0", "Instructions"),
}
KNOWN_CODES = {c for c, _ in [*DOCUMENT_CODES.values(), *SECTION_CODES.values(), GENERIC_NOTE]}


def _id(*parts: object) -> str:
    return str(uuid.uuid5(_IDS, "/".join(map(str, parts))))


def _concept(code: tuple[str, str], text: str) -> dict[str, Any]:
    return {"coding": [{"system": LOINC, "code": code[0], "display": code[1]}], "text": text}


def _div(paragraphs: list[str]) -> str:
    return f'<div xmlns="{XHTML}">' + "".join(f"<p>{escape(p)}</p>" for p in paragraphs) + "</div>"


def to_bundle(doc: ExportNote) -> dict[str, Any]:
    """The document Bundle as a JSON-ready dict, validated (raises ExportError if it is not)."""
    if not doc.has_content:
        raise ExportError(f"note {doc.note_id or ''} of session {doc.session_id or '?'} has no content "
                          f"(status {doc.status}): nothing to send to an EHR as FHIR".replace("note  ", "note "))
    key = (doc.session_id, doc.note_id, doc.revision, doc.template, doc.signed_at)
    comp_url, author_url, patient_url = (f"urn:uuid:{_id(kind, *key)}" for kind in ("composition", "author",
                                                                                       "patient"))
    author_name = doc.signed_by or doc.clinician or "Unknown clinician"
    practitioner = {"resourceType": "Practitioner", "id": author_url[9:], "name": [{"text": author_name}]}
    entries = [{"fullUrl": author_url, "resource": practitioner}]
    composition: dict[str, Any] = {
        "resourceType": "Composition",
        "id": comp_url[9:],
        "identifier": {"system": "urn:scribe:note", "value": f"{doc.session_id}/{doc.note_id or 'draft'}"},
        "status": "final" if doc.signed else "preliminary",
        "type": _concept(DOCUMENT_CODES.get(doc.template.casefold(), GENERIC_NOTE), doc.template),
        "date": iso(doc.signed_at or doc.created_at),
        "author": [{"reference": author_url, "display": author_name}],
        "title": doc.template,
        "text": {"status": "generated", "div": _div([doc.template, *(s.title for s in doc.sections)])},
        "section": [{"title": s.title, "code": _concept(SECTION_CODES.get(s.key, GENERIC_NOTE), s.title),
                     "text": {"status": "generated", "div": _div(list(s.sentences))}} for s in doc.sections],
    }
    if doc.visit_name:
        entries.append({"fullUrl": patient_url, "resource": {"resourceType": "Patient", "id": patient_url[9:],
                                                             "name": [{"text": doc.visit_name}]}})
        composition["subject"] = {"reference": patient_url, "display": doc.visit_name}
    if doc.signed:
        composition["attester"] = [{"mode": "legal", "time": iso(doc.signed_at or 0),
                                    "party": {"reference": author_url, "display": author_name}}]
    bundle = {"resourceType": "Bundle", "id": _id("bundle", *key),
              "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{_id('bundle', *key)}"},
              "type": "document", "timestamp": iso(doc.signed_at or doc.created_at),
              "entry": [{"fullUrl": comp_url, "resource": composition}, *entries]}
    problems = validate(bundle, signed=doc.signed)
    if problems:
        raise ExportError("FHIR document failed its checks: " + "; ".join(problems))
    return bundle


def to_json(doc: ExportNote) -> str:
    return json.dumps(to_bundle(doc), indent=2, ensure_ascii=False) + "\n"


def validate(bundle: dict[str, Any], signed: bool | None = None) -> list[str]:
    """Every problem found (empty: valid). `signed`: also check the status says so."""
    from fhir.resources.R4B.bundle import Bundle
    from pydantic import ValidationError

    try:
        Bundle.model_validate(bundle)
    except ValidationError as exc:
        return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    problems: list[str] = []
    entries = bundle.get("entry") or []
    if bundle.get("type") != "document":
        problems.append("Bundle.type is not 'document'")
    if not bundle.get("identifier", {}).get("value") or not bundle.get("timestamp"):
        problems.append("a document Bundle needs an identifier and a timestamp")
    if not entries or entries[0].get("resource", {}).get("resourceType") != "Composition":
        return [*problems, "the first entry of a document Bundle must be its Composition"]
    comp = entries[0]["resource"]
    urls = {e.get("fullUrl") for e in entries}
    expected = {None: ("preliminary", "final"), True: ("final",), False: ("preliminary",)}[signed]
    if comp.get("status") not in expected:
        problems.append(f"Composition.status {comp.get('status')!r} (expected {' or '.join(expected)})")
    problems += _loinc_problems("Composition.type", comp.get("type"))
    narratives = [("Composition.text", comp.get("text"))]
    for i, section in enumerate(comp.get("section") or []):
        problems += _loinc_problems(f"section[{i}].code", section.get("code"))
        narratives.append((f"section[{i}].text", section.get("text")))
    if not comp.get("section"):
        problems.append("Composition has no section")
    for where, narrative in narratives:
        problems += _xhtml_problems(where, narrative)
    refs = [a.get("reference") for a in comp.get("author") or []] + [comp.get("subject", {}).get("reference")]
    refs += [a.get("party", {}).get("reference") for a in comp.get("attester") or []]
    problems += [f"reference {r} is not in the Bundle" for r in refs if r and r not in urls]
    return problems


def _loinc_problems(where: str, concept: dict[str, Any] | None) -> list[str]:
    codings = (concept or {}).get("coding") or []
    if not any(c.get("system") == LOINC and c.get("code") in KNOWN_CODES for c in codings):
        return [f"{where} has no known LOINC code"]
    return []


def _xhtml_problems(where: str, narrative: dict[str, Any] | None) -> list[str]:
    if not narrative:
        return [f"{where} is missing"]
    try:
        root = ET.fromstring(narrative.get("div", ""))
    except ET.ParseError as exc:
        return [f"{where}.div is not well-formed XML: {exc}"]
    if root.tag != f"{{{XHTML}}}div":
        return [f"{where}.div is not an XHTML div (root {root.tag}; the namespace must be {XHTML})"]
    if any(el.tag in (f"{{{XHTML}}}script", f"{{{XHTML}}}style") for el in root.iter()):
        return [f"{where}.div holds a script or style element"]
    return []
