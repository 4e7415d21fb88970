"""Logging: stderr outside journald, journald fields (SESSION_ID, ...) from `extra=`."""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.daemon import logging_setup
from appliance.daemon.logging_setup import (
    journal_field_name,
    journal_fields,
    log_fields,
    setup_logging,
    stderr_is_journal,
)


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for h in root.handlers[:]:
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)


def test_field_mapping() -> None:
    assert journal_field_name("session_id") == "SESSION_ID"
    assert journal_field_name("utterance-id") == "UTTERANCE_ID"
    assert journal_field_name("_trusted") == "TRUSTED"
    assert journal_field_name("2nd") == "F_2ND"
    assert journal_field_name("__") is None
    assert journal_fields({"session_id": 42, "room": "exam-1", "skip": None}) == {
        "SESSION_ID": "42", "ROOM": "exam-1",
    }


def test_log_fields_avoids_logrecord_clashes() -> None:
    extra = log_fields(session_id="s1", name="x", message="y", gone=None)
    assert extra == {"session_id": "s1", "name_": "x", "message_": "y"}
    logging.getLogger("t").info("ok", extra=extra)  # would raise KeyError without the renaming


def test_outside_journald_uses_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    handler = setup_logging("debug", component="appliance-test")
    assert type(handler) is logging.StreamHandler
    assert logging.getLogger().level == logging.DEBUG
    logging.getLogger("appliance.x").info("started", extra=log_fields(session_id="s7"))
    line = buf.getvalue().strip()
    assert "INFO appliance-test appliance.x: started [session_id=s7]" in line
    assert line[:4].isdigit()  # timestamped
    # A second call replaces, not stacks, the handler.
    setup_logging("INFO")
    assert sum(getattr(h, "_appliance_handler", False) for h in logging.getLogger().handlers) == 1


def test_journal_stream_must_match_stderr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open(tmp_path / "stream", "w") as f, open(tmp_path / "other", "w") as other:
        st = os.fstat(f.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert stderr_is_journal(env, f)
        assert not stderr_is_journal(env, other)  # inherited variable, redirected stderr
        assert not stderr_is_journal({"JOURNAL_STREAM": "garbage"}, f)
        assert not stderr_is_journal({}, f)
        assert not stderr_is_journal(env, io.StringIO())  # no fileno


@pytest.mark.skipif(logging_setup._JournalHandler is None, reason="systemd-python not installed")
def test_under_journald_sends_structured_fields(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_stderr = (tmp_path / "stderr").open("w")
    st = os.fstat(fake_stderr.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    monkeypatch.setattr(sys, "stderr", fake_stderr)
    handler = setup_logging("INFO", component="appliance")
    assert isinstance(handler, logging_setup._JournalHandler)
    sent: list[tuple[str, dict[str, object]]] = []

    def fake_send(message: str, /, **fields: object) -> None:  # stands in for systemd.journal.send
        sent.append((message, fields))

    handler.send = fake_send  # type: ignore[attr-defined]
    logging.getLogger("appliance.session").warning("paused", extra=log_fields(session_id="s9", room="exam-2"))
    fake_stderr.close()
    (msg, fields), = sent
    assert msg == "appliance.session: paused"
    assert fields["SYSLOG_IDENTIFIER"] == "appliance"
    assert fields["SESSION_ID"] == "s9" and fields["ROOM"] == "exam-2"
