"""The clinic web view in Debian's Chromium (Playwright), served by a real `clinic web` process on a
real SQLite store: log in, open a session, hover and tap a note sentence to see its evidence in the
transcript, edit and sign, export PDF and FHIR. Any CSP violation or script error fails the test."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pypdf
import pytest

from clinic.export.fhir import validate
from clinic.store import SqliteTranscriptStore
from clinic.users import add_user
from tests.browser import chromium, free_port, new_page, shot, wait_until  # noqa: F401 (fixture)
from tests.clinic_notes_store import SESSION, clinic_config, store_visit

pytestmark = pytest.mark.slow  # a browser, a broker or a daemon process: make check leaves it to make test

PASSWORD = "correct horse battery"
MARK = "rgb(255, 229, 138)"  # .segment.evidence in clinic.css


@pytest.fixture
def clinic_web(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    cfg = clinic_config(tmp_path, f"[web]\nport = {port}\n")
    repo = SqliteTranscriptStore(str(tmp_path / "clinic.db"))
    store_visit(repo, ["SOAP", "Patient Instructions"], started_at=time.time() - 3600)
    add_user(repo, "ada", "Dr Ada Osei", PASSWORD)
    repo.close()
    log = (tmp_path / "web.log").open("w")
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from clinic.cli import main; sys.exit(main())",
                             "--config", str(cfg), "web"], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            with urllib.request.urlopen(base + "/login", timeout=2) as r:
                return r.status == 200
        except OSError:
            assert proc.poll() is None, (tmp_path / "web.log").read_text()
            return False

    try:
        wait_until(up, 30, "clinic web view answering")
        yield base
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def watch_for_errors(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def on_text(sentence: Any) -> tuple[float, float]:
    """A point on the sentence's first line: a sentence wrapped over two lines has its box's centre
    between them, possibly on another sentence."""
    sentence.scroll_into_view_if_needed()
    r = sentence.evaluate("e => { const r = e.getClientRects()[0]; return [r.x + r.width / 2, r.y + r.height / 2]; }")
    return r[0], r[1]


def segment_background(page: Any, text: str) -> str:
    return page.locator(".segment", has_text=text).evaluate("e => getComputedStyle(e).backgroundColor")


def test_review_a_note_beside_its_evidence_edit_sign_and_export(chromium: Any, clinic_web: str,  # noqa: F811
                                                                 tmp_path: Path) -> None:
    page = new_page(chromium)
    errors = watch_for_errors(page)
    page.goto(clinic_web + "/")
    assert "/login" in page.url
    page.fill("#username", "ada")
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.click("a.session")
    page.wait_for_url(f"**/sessions/{SESSION}*")
    assert page.locator(".tabs a.active").inner_text() == "SOAP"
    shot(page, "clinic-session", sizes=("1280x800",))

    # Hover: the sentence's own segment lights up, the others do not.
    sentence = page.locator(".note .sentence", has_text="lisinopril 20 mg")
    assert segment_background(page, "lisinopril twenty milligrams") != MARK
    page.mouse.move(*on_text(sentence))
    assert segment_background(page, "lisinopril twenty milligrams") == MARK
    assert segment_background(page, "allergic to penicillin") != MARK
    # Denies fever and chills: the question and the answer are both evidence.
    page.mouse.move(*on_text(page.locator(".note .sentence", has_text="Denies fever")))
    assert segment_background(page, "Any fever or chills?") == MARK
    assert page.locator(".segment.evidence").count() == 2
    assert segment_background(page, "lisinopril twenty milligrams") != MARK
    # Tap (a touch screen has no hover): stays highlighted after the pointer leaves.
    page.touchscreen.tap(*on_text(page.locator(".note .sentence", has_text="penicillin")))
    page.mouse.move(1, 1)
    assert segment_background(page, "allergic to penicillin") == MARK

    # Edit: keep one plan sentence, add one; the new one has no evidence and is marked.
    page.click("#edit")
    plan = page.locator("#section-plan")
    plan.fill(plan.input_value() + "\nReturn if fever above 101 F.")
    page.click("#save")
    page.wait_for_url(f"**/sessions/{SESSION}?note=*")
    added = page.locator(".note .sentence", has_text="Return if fever above 101 F.")
    assert added.get_attribute("class") == "sentence unsupported" and added.get_attribute("data-evidence") == ""
    assert "edited by Dr Ada Osei" in page.inner_text("#note-state")
    assert page.locator(".tabs a").all_inner_texts() == ["SOAP", "Patient Instructions"]  # as the visit asked

    page.click("#sign")
    page.wait_for_selector("#note-state:has-text('signed by Dr Ada Osei')")
    assert page.locator("#sign").count() == 0 and page.inner_text("#edit") == "Edit (new version)"
    shot(page, "clinic-signed", sizes=("1280x800",))

    with page.expect_download() as pdf_download:
        page.click("#export-pdf")
    pdf = pdf_download.value.path().read_bytes()
    pdf_text = " ".join(" ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages).split())
    assert "Return if fever above 101 F." in pdf_text and "Signed by Dr Ada Osei" in pdf_text
    with page.expect_download() as fhir_download:
        page.click("#export-fhir")
    bundle = json.loads(fhir_download.value.path().read_text())
    assert validate(bundle, signed=True) == []
    assert "Return if fever above 101 F." in json.dumps(bundle)

    # Regenerate with another template; the assistant without an LLM answers in one plain sentence.
    page.select_option("#regen-template", "H&P")
    page.click("#regenerate")
    page.wait_for_selector(".tabs a.active:has-text('H&P')")
    assert page.locator(".note .sentence").count() > 5
    page.select_option("#assist-command", "concise")
    page.click("#assist")
    assert page.locator("#suggestion .plain").inner_text().startswith(("Assistant commands are not installed",
                                                                       "No LLM is configured"))
    assert errors == []  # no CSP violation, no script error

    repo = SqliteTranscriptStore(str(tmp_path / "clinic.db"))
    actions = [e.action for e in repo.audit_log(SESSION) if e.actor == "ada"]
    repo.close()
    assert {"read", "read-note", "edit-note", "sign-note", "export"} <= set(actions)
