"""The clinic store's review tables (clinic/store/review.py) on both backends (a SQLite file and a
throwaway PostgreSQL server): edits are new versions, signatures are final, users keep their
counts, the sessions list and session details are not transcript reads, and the SQL stays in the
portable subset."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from clinic import cli
from clinic.store import TranscriptStore
from clinic.store.review import NOTE_COLUMNS, REVIEW_SCHEMA, ReviewError
from clinic.users import LoginPolicy, UserError, add_user, authenticate
from tests.clinic_notes_store import SESSION, clinic_config, store_visit
from tests.postgres import ClinicStoreTarget


@pytest.fixture
def repo(clinic_store: ClinicStoreTarget) -> TranscriptStore:
    return clinic_store.open()


def test_signed_notes_are_final_and_edits_are_new_versions(repo: TranscriptStore) -> None:
    (soap,) = store_visit(repo, ["SOAP"])
    signed = repo.sign_note(soap.id, signer="Dr Ada Osei", actor="ada")
    with pytest.raises(ReviewError, match="already signed by Dr Ada Osei"):
        repo.sign_note(soap.id, signer="Dr Bo")
    edited = repo.edit_note(soap.id, "new text\n", {**soap.body, "sections": []}, editor="Dr Bo", actor="bo")
    assert (edited.edited_from, edited.edited_by, edited.signed_at) == (soap.id, "Dr Bo", None)
    again = repo.note(soap.id)
    assert (again.text, again.body, again.signed_by, again.superseded_by) == (signed.text, signed.body,
                                                                              "Dr Ada Osei", edited.id)
    with pytest.raises(ReviewError, match=f"replaced by note {edited.id}"):
        repo.edit_note(soap.id, "x", {}, editor="Dr Bo")
    third = repo.edit_note(edited.id, "newer text\n", edited.body, editor="Dr Bo")
    with pytest.raises(ReviewError, match=f"replaced by note {third.id}; sign the current version"):
        repo.sign_note(edited.id, signer="Dr Bo")
    assert [n.id for n in repo.notes(SESSION, current_only=True)] == [third.id]


def test_a_failed_edit_changes_nothing(repo: TranscriptStore) -> None:
    (soap,) = store_visit(repo, ["SOAP"])
    with pytest.raises(ReviewError, match="no note 999"):
        repo.edit_note(999, "x", {}, editor="Dr Bo")
    assert [n.id for n in repo.notes(SESSION)] == [soap.id] and repo.note(soap.id).superseded_by is None


@pytest.mark.slow
def test_users_and_their_lockout_live_in_the_store(repo: TranscriptStore, clinic_store: ClinicStoreTarget) -> None:
    now = [1_800_000_000.0]
    add_user(repo, "ada", "Dr Ada Osei", "correct horse battery")
    with pytest.raises(UserError, match="exists"):
        add_user(repo, "ada", "Again", "correct horse battery")
    policy = LoginPolicy(attempts=2, lockout_s=60, lockout_max_s=600)
    for _ in range(2):
        with pytest.raises(UserError, match="Wrong user name or password"):
            authenticate(repo, "ada", "not the password", policy, lambda: now[0])
    reopened = clinic_store.open()  # a restart keeps the lockout
    with pytest.raises(UserError, match="locked for 60 s more"):
        authenticate(reopened, "ada", "correct horse battery", policy, lambda: now[0])
    now[0] += 61
    assert authenticate(reopened, "ada", "correct horse battery", policy, lambda: now[0]).display_name == "Dr Ada Osei"
    assert repo.user("ada").failures == 0 and repo.user("ada").locked_until == 0.0


def test_sessions_overview_and_meta_read_no_transcript(repo: TranscriptStore) -> None:
    store_visit(repo, ["SOAP", "H&P"], started_at=2000.0)
    store_visit(repo, ["SOAP"], session_id="0190aaaa-0000-7000-8000-000000000002", started_at=5000.0)
    rows = repo.sessions_overview(since=1000.0)
    assert [(r.session_id[-1], r.notes, r.signed, r.room) for r in rows] == [("2", 1, 0, "exam-3"),
                                                                              ("1", 2, 0, "exam-3")]
    repo.sign_note(repo.notes(SESSION)[0].id, signer="Dr Ada Osei")
    assert [r.signed for r in repo.sessions_overview(since=1000.0, until=3000.0)] == [1]
    assert repo.session_meta(SESSION)["templates"] == ["SOAP", "H&P"]
    assert repo.session_meta("nope") is None
    assert [e.action for e in repo.audit_log()] == ["sign-note"]  # listing and details are not transcript reads


def test_review_sql_is_the_subset_postgresql_runs_too() -> None:
    source = ast.parse(Path("clinic/store/review.py").read_text())
    literals = [n.value for n in ast.walk(source) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    sql = " ".join([*REVIEW_SCHEMA, NOTE_COLUMNS, *(x for x in literals if re.match(r"\s*(SELECT|INSERT|UPDATE|"
                                                                                     r"CREATE|DELETE)\b", x))])
    assert "INSERT INTO note_edits" in sql and "UPDATE clinic_users" in sql
    for sqlite_only in ("AUTOINCREMENT", "INSERT OR", "REPLACE INTO", "PRAGMA", "WITHOUT ROWID", "IFNULL", "GLOB"):
        assert sqlite_only not in sql
    assert not re.search(r"\bstrftime\(|\bdatetime\(", sql)


def test_web_config_refuses_the_network_without_tls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = clinic_config(tmp_path, '[web]\nhost = "0.0.0.0"\n')
    assert cli.main(["--config", str(cfg), "web"]) == 2
    assert capsys.readouterr().err == ("clinic: web.host = '0.0.0.0' is not loopback: set web.tls_cert and "
                                       "web.tls_key (the clinic web view is never served to the network "
                                       "without TLS)\n")
    cfg.write_text(f'[store]\npath = "{tmp_path / "c.db"}"\n[web]\ntls_cert = "{tmp_path / "none.crt"}"\n'
                   f'tls_key = "{tmp_path / "none.key"}"\n')
    assert cli.main(["--config", str(cfg), "run", "--web"]) == 2  # checked before the server connects
    assert capsys.readouterr().err == f"clinic: web.tls_cert: file not found: {tmp_path / 'none.crt'}\n"
    cfg.write_text("[web]\nlogin_attempts = 0\n")
    assert cli.main(["--config", str(cfg), "web"]) == 2
    assert "web.login_attempts" in capsys.readouterr().err


def test_web_port_in_use_is_one_line_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = clinic_config(tmp_path, f"[web]\nport = {port}\n")
        assert cli.main(["--config", str(cfg), "web"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"clinic: web.port = {port}: cannot listen on 127.0.0.1: ") and err.count("\n") == 1
