"""The clinic web view through Flask's test client on a real SQLite store with notes written by the
real generator: login (argon2, lockout, disabled users), CSRF, security headers, the audit of every
transcript and note view, edit/sign/versions, regenerate, assistant without an LLM, export."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path
from typing import Any

import pypdf
import pytest

from clinic import cli
from clinic.config import load_clinic_config
from clinic.export.fhir import validate
from clinic.store import SqliteTranscriptStore, TranscriptStore
from clinic.users import add_user, set_disabled
from clinic.web.app import create_app
from common.websafety import CSP
from tests.clinic_notes_store import SESSION, clinic_config, store_visit
from tests.postgres import ClinicStoreTarget

PASSWORD = "correct horse battery"


def current(repo: TranscriptStore, template: str = "SOAP") -> Any:
    return next(n for n in repo.notes(SESSION, current_only=True) if n.template == template)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Browser:
    """A test client that keeps the page's CSRF token, as a browser's forms do."""

    def __init__(self, app: Any) -> None:
        self.client = app.test_client()
        self.token = ""

    def get(self, url: str) -> Any:
        resp = self.client.get(url)
        page = resp.get_data(as_text=True) if resp.mimetype == "text/html" else ""
        m = re.search(r'name="csrf_token" value="([^"]+)"', page)
        self.token = m.group(1) if m else self.token
        return resp

    def post(self, url: str, data: dict[str, str] | None = None) -> Any:
        return self.client.post(url, data={"csrf_token": self.token, **(data or {})})

    def login(self, user: str = "ada", password: str = PASSWORD, next_url: str = "/") -> Any:
        self.get("/login")
        return self.post("/login", {"username": user, "password": password, "next": next_url})


@pytest.fixture
def site(tmp_path: Path, clinic_store: ClinicStoreTarget) -> tuple[Any, TranscriptStore, Clock]:
    """The web view on each store backend (SQLite file, PostgreSQL)."""
    cfg = load_clinic_config(str(clinic_config(tmp_path, "[web]\nlogin_attempts = 3\nlockout_s = 60\n")))
    clock = Clock()
    repo = clinic_store.open(clock=clock)
    store_visit(repo, ["SOAP", "Patient Instructions"], started_at=clock.now - 3600)
    add_user(repo, "ada", "Dr Ada Osei", PASSWORD)
    return create_app(cfg, repo, clock=clock), repo, clock


def test_every_page_needs_a_login_and_next_stays_on_the_site(site: Any) -> None:
    app, _, _ = site
    b = Browser(app)
    for url in ("/", f"/sessions/{SESSION}", "/notes/1/export/fhir", "/notes/1/edit"):
        resp = b.get(url)
        assert resp.status_code == 302 and resp.headers["Location"].startswith("/login?next=")
    assert b.login(next_url=f"/sessions/{SESSION}").headers["Location"] == f"/sessions/{SESSION}"
    b2 = Browser(app)
    assert b2.login(next_url="//evil.example/x").headers["Location"] == "/"


def test_a_stray_request_before_login_keeps_the_login_form_working(site: Any) -> None:
    app, _, _ = site
    b = Browser(app)
    b.get("/login")
    assert b.client.get("/favicon.ico").status_code == 302  # a browser asks for it while the form is shown
    assert b.post("/login", {"username": "ada", "password": PASSWORD, "next": "/"}).status_code == 302


@pytest.mark.slow
def test_wrong_passwords_lock_the_account_and_unknown_users_look_the_same(site: Any) -> None:
    app, repo, clock = site
    b = Browser(app)
    for _ in range(3):
        resp = b.login(password="wrong password!!")
        assert resp.status_code == 401 and "Wrong user name or password." in resp.get_data(as_text=True)
    assert "Wrong user name or password." in b.login(user="nobody").get_data(as_text=True)
    locked = b.login()  # the right password, but locked
    assert locked.status_code == 401 and "locked for 60 s more" in locked.get_data(as_text=True)
    clock.now += 61
    assert b.login().status_code == 302
    assert repo.user("ada").failures == 0
    actions = [e.action for e in repo.audit_log()]
    assert actions.count("login-refused") == 5 and "login-locked" in actions and actions[-1] == "login"


def test_disabled_user_is_logged_out_at_the_next_request(site: Any) -> None:
    app, repo, _ = site
    b = Browser(app)
    b.login()
    assert b.get("/").status_code == 200
    set_disabled(repo, "ada", True)
    assert b.get("/").status_code == 302
    assert "disabled" in b.login().get_data(as_text=True)


def test_idle_session_is_logged_out(site: Any) -> None:
    app, _, clock = site
    b = Browser(app)
    b.login()
    clock.now += 16 * 60  # idle_logout_min defaults to 15
    assert b.get("/").headers["Location"].startswith("/login")


def test_state_changes_without_the_csrf_token_are_refused(site: Any) -> None:
    app, repo, _ = site
    b = Browser(app)
    b.login()
    soap = repo.notes(SESSION, current_only=True)[0]
    for url in (f"/notes/{soap.id}/sign", f"/sessions/{SESSION}/regenerate", f"/notes/{soap.id}/edit",
                f"/notes/{soap.id}/clinician", "/logout"):
        resp = b.client.post(url, data={"csrf_token": "forged", "template": "SOAP", "speaker": "S2"})
        assert resp.status_code == 403, url
    assert repo.note(soap.id).signed_at is None and len(repo.notes(SESSION)) == 2
    assert b.client.post("/login", data={"username": "ada", "password": PASSWORD}).status_code == 403


def test_security_headers_on_every_page(site: Any) -> None:
    app, _, _ = site
    b = Browser(app)
    for resp in (b.get("/login"), b.login(), b.get("/"), b.get(f"/sessions/{SESSION}")):
        assert resp.headers["Content-Security-Policy"] == CSP
        assert resp.headers["X-Frame-Options"] == "DENY" and resp.headers["Cache-Control"] == "no-store"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert "HttpOnly" in b.login().headers["Set-Cookie"] and "SameSite=Strict" in b.login().headers["Set-Cookie"]
    for html in Path("clinic/web/templates").glob("*.html"):  # CSP forbids inline code and style
        text = html.read_text()
        assert "<script>" not in text and "style=" not in text and "<style" not in text and " on" + "click" not in text


def test_sessions_by_day_and_room(site: Any) -> None:
    app, repo, clock = site
    store_visit(repo, ["SOAP"], session_id="0190aaaa-0000-7000-8000-000000000002", room="exam-5",
                started_at=clock.now - 3 * 86400)
    store_visit(repo, ["SOAP"], session_id="0190aaaa-0000-7000-8000-000000000003", room="exam-5",
                started_at=clock.now - 40 * 86400)
    b = Browser(app)
    b.login()
    page = b.get("/").get_data(as_text=True)
    days = re.findall(r"<h2>([^<]+)</h2>", page)
    assert days == [time.strftime("%A %d %B %Y", time.localtime(t)) for t in (clock.now - 3600, clock.now - 3 * 86400)]
    assert re.findall(r"<h3>([^<]+)</h3>", page) == ["exam-3", "exam-5"] and page.count('class="session"') == 2
    only = b.get("/?room=exam-5&days=365").get_data(as_text=True)
    assert re.findall(r"<h3>([^<]+)</h3>", only) == ["exam-5", "exam-5"] and "000000000001" not in only
    assert repo.audit_log(SESSION) == []  # the list reads no transcript


def test_viewing_a_session_audits_the_transcript_and_the_note(site: Any) -> None:
    app, repo, _ = site
    b = Browser(app)
    b.login()
    soap, instructions = repo.notes(SESSION, current_only=True)
    page = b.get(f"/sessions/{SESSION}").get_data(as_text=True)
    assert 'data-evidence="' in page and 'data-seg="' in page
    assert "Clinician: clinician" in page and "guessed" not in page and "Swap:" not in page  # named on the device
    b.get(f"/sessions/{SESSION}?note={instructions.id}")
    views = [(e.actor, e.action, e.detail) for e in repo.audit_log(SESSION) if e.actor == "ada"]
    assert views == [("ada", "read", "clinic web view"), ("ada", "read-note", f"note {soap.id} (SOAP)"),
                     ("ada", "read", "clinic web view"),
                     ("ada", "read-note", f"note {instructions.id} (Patient Instructions)")]


def test_edit_makes_a_version_signed_notes_never_change(site: Any) -> None:
    app, repo, _ = site
    b = Browser(app)
    b.login()
    soap = repo.notes(SESSION, current_only=True)[0]
    plan = next(s for s in soap.body["sections"] if s["key"] == "plan")
    kept = plan["sentences"][0]["text"]
    b.get(f"/notes/{soap.id}/edit")
    resp = b.post(f"/notes/{soap.id}/edit", {"section-plan": f"{kept}\nReturn if fever above 101 F."})
    v2 = current(repo)
    assert resp.headers["Location"] == f"/sessions/{SESSION}?note={v2.id}"
    assert v2.edited_from == soap.id and v2.edited_by == "Dr Ada Osei" and repo.note(soap.id).superseded_by == v2.id
    sentences = next(s for s in v2.body["sections"] if s["key"] == "plan")["sentences"]
    assert sentences[0] == plan["sentences"][0]  # kept: its evidence too
    assert sentences[1] == {"text": "Return if fever above 101 F.", "evidence": [], "kind": "edited", "edited": True}
    assert "Return if fever above 101 F." in v2.text and "PLAN" in v2.text  # written again by the SOAP template
    b.post(f"/notes/{v2.id}/sign")
    signed = repo.note(v2.id)
    assert signed.signed_by == "Dr Ada Osei"
    assert b.post(f"/notes/{v2.id}/sign").status_code == 409  # never signed twice
    b.get(f"/notes/{v2.id}/edit")
    b.post(f"/notes/{v2.id}/edit", {"section-plan": "Completely new plan."})
    v3 = current(repo)
    assert v3.id != v2.id and v3.signed_at is None and v3.edited_from == v2.id
    assert repo.note(v2.id).text == signed.text and repo.note(v2.id).body == signed.body  # the signed one as it was
    assert b.post(f"/notes/{v2.id}/edit", {"section-plan": "x"}).status_code == 409  # only the current version
    audited = [(e.actor, e.action) for e in repo.audit_log(SESSION) if e.action in ("edit-note", "sign-note")]
    assert audited == [("ada", "edit-note"), ("ada", "sign-note"), ("ada", "edit-note")]  # the account, not the name


def test_regenerate_with_another_template_and_unknown_generator(site: Any) -> None:
    app, repo, _ = site
    b = Browser(app)
    b.login()
    b.get(f"/sessions/{SESSION}")
    resp = b.post(f"/sessions/{SESSION}/regenerate", {"template": "H&P", "generator": "builtin"})
    hp = current(repo, "H&P")
    assert resp.headers["Location"] == f"/sessions/{SESSION}?note={hp.id}"
    assert "HISTORY OF PRESENT ILLNESS" in hp.text
    resp = b.post(f"/sessions/{SESSION}/regenerate", {"template": "SOAP", "generator": "llm"})
    assert resp.status_code == 409 and "LLM" in resp.get_data(as_text=True)  # a sentence, not a crash
    assert b.post(f"/sessions/{SESSION}/regenerate", {"template": "SOAP", "generator": "gpt"}).status_code == 400


def test_the_reviewer_swaps_a_guessed_clinician_in_one_tap(tmp_path: Path, clinic_store: ClinicStoreTarget) -> None:
    cfg = load_clinic_config(str(clinic_config(tmp_path)))
    repo = clinic_store.open()
    [guessed] = store_visit(repo, ["SOAP"], speakers={"S1": "Speaker 1", "S2": "Speaker 2"})
    add_user(repo, "ada", "Dr Ada Osei", PASSWORD)
    b = Browser(create_app(cfg, repo))
    b.login()
    page = b.get(f"/sessions/{SESSION}").get_data(as_text=True)
    assert "guessed — Speaker 1 is the clinician" in page and "Swap: Speaker 2 is the clinician" in page
    b.post(f"/notes/{guessed.id}/sign")  # a signed note is never changed: the swap is a new version
    signed = repo.note(guessed.id)
    resp = b.post(f"/notes/{guessed.id}/clinician", {"speaker": "S2"})
    swapped = current(repo)
    assert resp.headers["Location"] == f"/sessions/{SESSION}?note={swapped.id}"
    kept = repo.note(guessed.id)
    assert kept.superseded_by == swapped.id and (kept.signed_at, kept.text) == (signed.signed_at, signed.text)
    assert {r["label"]: (r["role"], r["guessed"], r["set_by_reviewer"]) for r in swapped.body["roles"]} == {
        "S2": ("clinician", False, True), "S1": ("patient", True, False)}
    plan = next(s for s in swapped.body["sections"] if s["key"] == "plan")["sentences"]
    assert "albuterol" in guessed.text and not any("albuterol" in s["text"] for s in plan)  # S1's plan moved out
    page = b.get(f"/sessions/{SESSION}?note={swapped.id}").get_data(as_text=True)
    assert "set by a reviewer" in page and "Swap: Speaker 1 is the clinician" in page
    assert "Swap:" not in b.get(f"/sessions/{SESSION}?note={guessed.id}").get_data(as_text=True)  # superseded
    audited = [e.detail for e in repo.audit_log(SESSION) if e.action == "regenerate-note"]
    assert audited == [f"note {swapped.id} (SOAP, builtin; clinician set to S2)"]
    assert b.post(f"/notes/{swapped.id}/clinician", {"speaker": "S9"}).status_code == 400
    assert len(repo.notes(SESSION)) == 2


def test_assistant_without_an_llm_says_so_plainly(site: Any) -> None:
    app, repo, _ = site
    b = Browser(app)
    b.login()
    soap = repo.notes(SESSION, current_only=True)[0]
    b.get(f"/sessions/{SESSION}")
    page = b.post(f"/notes/{soap.id}/assist", {"command": "concise", "section": ""}).get_data(as_text=True)
    assert re.search(r'<p class="plain">(Assistant commands are not installed|No LLM is configured)', page)
    assert soap.text in repo.note(soap.id).text  # unchanged


def test_export_buttons_give_text_pdf_and_fhir(site: Any) -> None:
    app, repo, _ = site
    b = Browser(app)
    b.login()
    soap = repo.notes(SESSION, current_only=True)[0]
    text = b.get(f"/notes/{soap.id}/export/text")
    assert text.mimetype == "text/plain" and "PRELIMINARY: not signed." in text.get_data(as_text=True)
    assert f'filename="SOAP-0190aaaa-{soap.id}.txt"' in text.headers["Content-Disposition"]
    pdf = b.get(f"/notes/{soap.id}/export/pdf")
    assert "lisinopril 20 mg" in pypdf.PdfReader(io.BytesIO(pdf.data)).pages[0].extract_text()
    b.get(f"/sessions/{SESSION}")
    b.post(f"/notes/{soap.id}/sign")
    bundle = json.loads(b.get(f"/notes/{soap.id}/export/fhir").data)
    assert validate(bundle, signed=True) == []
    assert b.get(f"/notes/{soap.id}/export/docx").status_code == 404
    exports = [e.detail for e in repo.audit_log(SESSION) if e.action == "export"]
    assert exports == [f"note {soap.id} (SOAP) as {f}: clinic web view" for f in ("text", "pdf", "fhir")]


def test_users_command_adds_changes_and_disables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(clinic_config(tmp_path))

    def users(*args: str, password: str = "") -> int:
        monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
        return cli.main(["--config", cfg, "users", *args])

    assert users("add", "ada", "--name", "Dr Ada Osei", "--password-stdin", password=PASSWORD) == 0
    assert users("add", "ada", "--name", "Again", "--password-stdin", password=PASSWORD) == 2
    assert users("add", "bo", "--name", "Bo", "--password-stdin", password="short") == 2
    assert "at least 12 characters" in capsys.readouterr().err
    assert users("passwd", "nobody", "--password-stdin", password=PASSWORD) == 2
    assert users("passwd", "ada", "--password-stdin", password="another good password") == 0
    assert users("disable", "ada") == 0
    capsys.readouterr()
    assert users("list") == 0
    assert re.match(r"ada\s+Dr Ada Osei\s+disabled", capsys.readouterr().out)
    repo = SqliteTranscriptStore(str(tmp_path / "clinic.db"))
    user = repo.user("ada")
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
    assert [e.action for e in repo.audit_log()] == ["user-add", "user-passwd", "user-disable"]
    repo.close()


def test_a_no_speech_result_shows_its_message_and_offers_no_edit_or_sign(site: Any) -> None:
    app, repo, _ = site
    quiet = "0190aaaa-0000-7000-8000-00000000000a"
    (note,) = store_visit(repo, ["SOAP"], session_id=quiet, visit=[("Patient", "")], started_at=time.time())
    b = Browser(app)
    b.login()
    page = b.get(f"/sessions/{quiet}").get_data(as_text=True)
    assert note.status == "no_speech" and "No speech recorded" in page
    assert 'id="edit"' not in page and 'id="sign"' not in page
    assert b.post(f"/notes/{note.id}/sign").status_code == 409 and repo.note(note.id).signed_at is None


def test_an_edit_is_kept_when_the_clinic_template_fails_on_it(tmp_path: Path) -> None:
    from clinic.notes.templates import TemplateRegistry
    from clinic.web.editing import edited_body, rendered_text

    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "soap.j2").write_text('+++\nname = "SOAP"\ndescription = "d"\n\n[[sections]]\nkey = "plan"\n'
                                    'title = "Plan"\ntakes = ["plan"]\n+++\n'
                                    '{{ sections[0].sentences[0].evidence[0] }}\n')  # fails without evidence
    registry = TemplateRegistry(str(folder))
    body = {"template": "SOAP", "sections": [{"key": "plan", "title": "Plan", "sentences": []}]}
    text = rendered_text(edited_body(body, {"plan": "A plan the reviewer wrote."}), registry)
    assert text == "PLAN\n\nA plan the reviewer wrote.\n"
