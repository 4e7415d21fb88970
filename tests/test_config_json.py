"""Non-finite numbers: refused where they come in (MQTT messages, the control socket; the config
file in test_config.py), and never printed as JSON that other programs cannot parse."""

from __future__ import annotations

import re

import pytest

from appliance.store import SessionStore
from appliance.sync.payload import build_payload
from clinic import cli
from clinic.config import IngestConfig
from clinic.ingest import Ingest
from common import jsontext, protocol
from tests.broker import make_finished_sessions
from tests.daemon import DaemonProcess, write_config, write_silent_wav

TOPIC = "scribe/site1/dev-a/transcript"
NON_FINITE = ["Infinity", "-Infinity", "NaN", "1e400"]


def _transcript(store: SessionStore) -> dict:
    [sid] = make_finished_sessions(store, 1, segments=3)
    return build_payload(store, sid, 1, [])


@pytest.mark.parametrize("literal", NON_FINITE)
def test_clinic_drops_a_transcript_with_a_non_finite_number(store, clinic_store, literal):
    repo = clinic_store.open()
    payload = _transcript(store)
    assert isinstance(payload["started_at"], float)
    data, n = re.subn(rb'"started_at":[-0-9.e+]+', b'"started_at":' + literal.encode(), protocol.encode(payload))
    assert n == 1
    ingest = Ingest("scribe", repo, IngestConfig())
    ingest.handle_batch([(TOPIC, data)])
    assert repo.count() == 0 and ingest.stats.dropped == 1
    with pytest.raises(protocol.ProtocolError, match="not UTF-8 JSON"):
        protocol.decode(data, 1_000_000)
    ingest.handle_batch([(TOPIC, protocol.encode(payload))])  # the same transcript, finite: stored
    assert repo.count() == 1


def test_clinic_output_is_valid_json_even_for_a_row_stored_before_the_check(store, clinic_store, tmp_path, capsys):
    """A row holding inf (written by an older version) is printed with null, not `Infinity`."""
    repo = clinic_store.open()
    payload = {**_transcript(store), "started_at": float("inf")}
    repo.store_many([payload], ["0" * 64])  # as the ingest stores it: with the digest of what came in
    repo.close()
    cfg = tmp_path / "clinic.toml"
    cfg.write_text(clinic_store.toml())
    capsys.readouterr()
    assert cli.main(["sessions", "show", payload["session_id"], "--config", str(cfg)]) == 0
    shown = jsontext.loads(capsys.readouterr().out)  # strict: raises on NaN / Infinity
    assert shown["started_at"] is None and shown["session_id"] == payload["session_id"]


@pytest.mark.slow
def test_control_socket_refuses_nan(tmp_path):
    """`"consent": NaN` used to start a visit with consent recorded as given (bool(nan) is True)."""
    with DaemonProcess(write_config(tmp_path, write_silent_wav(tmp_path / "silence.wav"))) as daemon:
        reply = daemon.ctl("start", name="AB", consent=float("nan"))  # json.dumps writes NaN
        assert reply["ok"] is False and "NaN is not a JSON number" in reply["error"]
        assert daemon.status()["state"] == "idle"


def test_dumps_never_writes_non_finite_numbers():
    text = jsontext.dumps({"a": [1.5, float("nan"), {"b": float("-inf")}], "c": "x"})
    assert jsontext.loads(text) == {"a": [1.5, None, {"b": None}], "c": "x"}
