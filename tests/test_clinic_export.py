"""Exports of real generated notes: the text for an EHR, a PDF read back with pypdf, and a FHIR R4
document Bundle checked by fhir.resources' R4B models and by our own rules (LOINC codes, status,
XHTML namespace, references). `clinic generate --format fhir|pdf` and `clinic export`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pypdf
import pytest

from clinic import cli
from clinic.export import ExportError, export
from clinic.export.document import from_stored
from clinic.export.fhir import LOINC, SECTION_CODES, XHTML, to_bundle, validate
from clinic.export.pdf import UNSHOWABLE, pdf_safe
from clinic.store import SqliteTranscriptStore
from tests.clinic_notes_store import SESSION, clinic_config, store_visit
from tests.notes_visit import VISIT, payload

TEMPLATES = ["SOAP", "H&P", "Progress Note", "Patient Instructions"]


@pytest.fixture
def repo(tmp_path: Path) -> SqliteTranscriptStore:
    store = SqliteTranscriptStore(str(tmp_path / "clinic.db"))
    yield store
    store.close()


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


def test_text_export_is_the_note_with_visit_and_signature_lines(repo: SqliteTranscriptStore) -> None:
    (soap,) = store_visit(repo, ["SOAP"])
    text = export(from_stored(soap, repo.session_meta(SESSION)), "text").decode()
    assert text.splitlines()[0].startswith("SOAP · MG · exam-3 · ")
    assert soap.text.strip() in text
    assert text.rstrip().endswith("PRELIMINARY: not signed.")
    signed = repo.sign_note(soap.id, signer="Dr Ada Osei")
    assert "Signed by Dr Ada Osei on " in export(from_stored(signed, repo.session_meta(SESSION)), "text").decode()


def test_pdf_export_holds_every_sentence_of_the_note(repo: SqliteTranscriptStore) -> None:
    for note in store_visit(repo, TEMPLATES):
        data = export(from_stored(note, repo.session_meta(SESSION)), "pdf")
        assert data.startswith(b"%PDF")
        text = " ".join(pdf_text(data).split())
        for section in note.body["sections"]:
            for sentence in section["sentences"]:
                # pypdf re-flows lines: compare with whitespace normalised
                assert " ".join(sentence["text"].split()) in text, (note.template, sentence["text"])
        assert "PRELIMINARY: not signed." in text


def test_pdf_shows_characters_outside_its_fonts_visibly_and_never_crashes(repo: SqliteTranscriptStore) -> None:
    visit = [*VISIT[:4], ("Patient", "Uh, about two weeks now. My name is Zofia Łódź and my dose is ≥ 20 mg, "
                                     "my other doctor wrote 咳嗽 on the form.")]
    (note,) = store_visit(repo, ["SOAP"], visit=visit)
    assert "咳嗽" in note.text  # the generator kept it: the PDF must not lose it silently
    text = pdf_text(export(from_stored(note, repo.session_meta(SESSION)), "pdf"))
    assert "Lódz" in text and ">= 20 mg" in text  # Ł, ź, ≥ folded; ó is Latin-1 already
    assert f"{UNSHOWABLE}{UNSHOWABLE}" in text
    assert "2 character(s) the PDF fonts cannot show" in text
    assert pdf_safe("café – “ok” …") == ("café – “ok” …", 0)  # Windows-1252 characters stay as they are


def test_fhir_document_validates_and_uses_loinc_codes_and_xhtml(repo: SqliteTranscriptStore) -> None:
    for note in store_visit(repo, TEMPLATES):
        bundle = to_bundle(from_stored(note, repo.session_meta(SESSION)))
        assert validate(bundle, signed=False) == []
        assert bundle["type"] == "document"
        comp = bundle["entry"][0]["resource"]
        assert comp["status"] == "preliminary" and "attester" not in comp
        assert comp["subject"]["display"] == "MG" and comp["author"][0]["display"] == "Dr Osei"
        keys = [s["key"] for s in note.body["sections"] if s["sentences"]]
        assert [s["code"]["coding"][0]["code"] for s in comp["section"]] == [SECTION_CODES[k][0] for k in keys]
        assert all(s["code"]["coding"][0]["system"] == LOINC for s in comp["section"])
        assert all(s["text"]["div"].startswith(f'<div xmlns="{XHTML}">') for s in comp["section"])
    doc_codes = {to_bundle(from_stored(n, None))["entry"][0]["resource"]["type"]["coding"][0]["code"]
                 for n in repo.notes(SESSION)}
    assert doc_codes == {"11506-3", "34117-2", "69730-0"}


def test_signed_note_is_a_final_composition_attested_by_the_signer(repo: SqliteTranscriptStore) -> None:
    (soap,) = store_visit(repo, ["SOAP"])
    signed = repo.sign_note(soap.id, signer="Dr Ada Osei")
    bundle = to_bundle(from_stored(signed, repo.session_meta(SESSION)))
    comp = bundle["entry"][0]["resource"]
    assert comp["status"] == "final"
    assert comp["attester"][0]["mode"] == "legal"
    assert comp["attester"][0]["party"]["reference"] in {e["fullUrl"] for e in bundle["entry"]}
    assert validate(bundle, signed=True) == []
    assert validate(bundle, signed=False) == ["Composition.status 'final' (expected preliminary)"]


def test_note_text_is_text_in_the_narrative_and_the_pdf_never_markup(repo: SqliteTranscriptStore) -> None:
    visit = [*VISIT[:4], ("Patient", "About two weeks now and I wrote <script>alert(1)</script> & more on the form.")]
    (note,) = store_visit(repo, ["SOAP"], visit=visit)
    bundle = to_bundle(from_stored(note, None))
    divs = " ".join(s["text"]["div"] for s in bundle["entry"][0]["resource"]["section"])
    assert "&lt;script&gt;" in divs and "<script>" not in divs
    assert validate(bundle) == []
    assert "<script>alert(1)</script> & more" in pdf_text(export(from_stored(note, None), "pdf"))  # not markup


def test_our_checks_catch_what_the_r4b_models_accept(repo: SqliteTranscriptStore) -> None:
    (note,) = store_visit(repo, ["SOAP"])
    good = to_bundle(from_stored(note, None))

    def broken(change: str) -> list[str]:
        bundle = json.loads(json.dumps(good))
        comp = bundle["entry"][0]["resource"]
        if change == "namespace":
            comp["section"][0]["text"]["div"] = "<div><p>Cough.</p></div>"
        elif change == "code":
            comp["section"][1]["code"]["coding"][0]["code"] = "12345-6"
        elif change == "status":
            comp["status"] = "amended"
        elif change == "reference":
            comp["author"][0]["reference"] = "urn:uuid:00000000-0000-0000-0000-000000000000"
        elif change == "type":
            bundle["type"] = "collection"
        return validate(bundle)

    assert validate(good) == []
    assert broken("namespace") == ["section[0].text.div is not an XHTML div (root div; the namespace must be "
                                   f"{XHTML})"]
    assert broken("code") == ["section[1].code has no known LOINC code"]
    assert broken("status") == ["Composition.status 'amended' (expected preliminary or final)"]
    assert broken("reference") == ["reference urn:uuid:00000000-0000-0000-0000-000000000000 is not in the Bundle"]
    assert broken("type") == ["Bundle.type is not 'document'"]
    missing = json.loads(json.dumps(good))
    del missing["entry"][0]["resource"]["author"]
    assert validate(missing)[0].startswith("entry.0.resource.author")  # fhir.resources R4B: required field


def test_no_speech_note_is_not_sent_to_an_ehr_as_fhir(repo: SqliteTranscriptStore) -> None:
    (note,) = store_visit(repo, ["SOAP"], visit=[("Patient", "")])
    assert note.status == "no_speech"
    with pytest.raises(ExportError, match=r"has no content \(status no_speech\)"):
        export(from_stored(note, None), "fhir")
    assert "No speech recorded" in export(from_stored(note, None), "text").decode()
    assert "No speech recorded" in pdf_text(export(from_stored(note, None), "pdf"))


def test_generate_writes_fhir_and_pdf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "visit.json"
    src.write_text(json.dumps(payload(["SOAP"])))
    assert cli.main(["generate", str(src), "--template", "H&P", "--format", "fhir"]) == 0
    bundle = json.loads(capsys.readouterr().out)
    assert validate(bundle, signed=False) == []
    assert bundle["entry"][0]["resource"]["type"]["coding"][0]["code"] == "34117-2"
    out = tmp_path / "note.pdf"
    assert cli.main(["generate", str(src), "--format", "pdf", "--out", str(out)]) == 0
    assert "lisinopril 20 mg" in pdf_text(out.read_bytes())


def test_export_command_writes_the_current_note_and_audits_it(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    cfg = clinic_config(tmp_path)
    repo = SqliteTranscriptStore(str(tmp_path / "clinic.db"))
    soap, _ = store_visit(repo, ["SOAP", "Patient Instructions"])
    repo.close()
    base = ["--config", str(cfg), "export", SESSION]
    assert cli.main([*base, "--format", "fhir"]) == 2
    assert capsys.readouterr().err == (f"clinic: session {SESSION} has 2 current notes; choose one with --template "
                                       "(SOAP, Patient Instructions)\n")
    out = tmp_path / "soap.json"
    assert cli.main([*base, "--template", "soap", "--format", "fhir", "--out", str(out), "--reason", "to EHR"]) == 0
    assert validate(json.loads(out.read_text()), signed=False) == []
    assert cli.main([*base, "--note", str(soap.id), "--format", "text"]) == 0
    assert "PRELIMINARY: not signed." in capsys.readouterr().out
    assert cli.main(["--config", str(cfg), "export", "no-such-session"]) == 2
    assert capsys.readouterr().err == "clinic: session no-such-session has no current note\n"
    repo = SqliteTranscriptStore(str(tmp_path / "clinic.db"))
    exports = [e.detail for e in repo.audit_log(SESSION) if e.action == "export"]
    assert exports == [f"note {soap.id} (SOAP) as fhir: to EHR", f"note {soap.id} (SOAP) as text"]
    repo.close()
