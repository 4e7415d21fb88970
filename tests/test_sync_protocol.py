"""The sync contract without a broker: schema, refusal of binary/oversize payloads, chunking."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

import pytest

from appliance.store import SessionStore
from appliance.sync.payload import build_payload
from common import protocol
from common.protocol import PayloadRefused, ProtocolError, Topics
from tests.conftest import Clock

MODELS = [{"role": "asr", "name": "whisper:whisper-tiny.en", "version": "1"}]


def finished_session(store: SessionStore, clock: Clock, n: int = 3, words: str = "the patient reports") -> str:
    s = store.create_session("Pat Doe", "exam-1", "Dr Who", "dev-a", "site1", ["SOAP"], True)
    store.transition(s.id, "recording", "panel")
    for i in range(n):
        clock.tick(0.001)
        store.add_segment(s.id, i * 4.0, i * 4.0 + 3.5, f"S{i % 2 + 1}", f"{words} {i} \"quoted\" \\ ünïcødé")
    store.transition(s.id, "stopped", "panel")
    return s.id


def test_payload_is_read_through_the_audited_store_and_validates(store: SessionStore, clock: Clock) -> None:
    sid = finished_session(store, clock)
    payload = build_payload(store, sid, 1, MODELS)
    protocol.validate("transcript", payload)
    assert [s["speaker"] for s in payload["segments"]] == ["S1", "S2", "S1"]
    assert payload["speakers"] == {"S1": "Speaker 1", "S2": "Speaker 2"}
    assert payload["consent"] is True and payload["templates"] == ["SOAP"]
    event = store.audit_events(sid)[-1]
    assert (event.actor, event.action, event.detail["revision"]) == ("sync", "read", 1)


def test_payload_of_an_older_revision_is_that_revision(store: SessionStore, clock: Clock) -> None:
    sid = finished_session(store, clock)
    seg = store.read_transcript(sid, "t", "r")[0]
    store.edit_segment_text(sid, seg.id, "corrected words", "clinician")
    assert build_payload(store, sid, 1, MODELS)["segments"][0]["text"].startswith("the patient reports 0")
    assert build_payload(store, sid, 2, MODELS)["segments"][0]["text"] == "corrected words"


def test_schema_has_no_place_for_audio(store: SessionStore, clock: Clock) -> None:
    payload = build_payload(store, finished_session(store, clock), 1, MODELS)
    for extra in ({"audio": "UklGRg=="}, {"segments": [{**payload["segments"][0], "audio": "x"}]}):
        with pytest.raises(ProtocolError, match=r"must not contain \{'audio'\}"):
            protocol.validate("transcript", {**payload, **extra})
    schema = json.loads(Path(protocol.schema_path("transcript")).read_text())
    assert "audio" not in json.dumps(schema).replace("no field for audio", "")


@pytest.mark.parametrize("poison", [
    b"RIFF\x00\x00WAVEfmt ",  # bytes object
    "RIFF\x00\x24\x00\x00WAVE",  # control characters in a string
    base64.b64encode(bytes(random.Random(1).randbytes(3000))).decode(),  # base64 audio in the text
])
def test_sender_refuses_binary_content(store: SessionStore, clock: Clock, poison: object) -> None:
    payload = build_payload(store, finished_session(store, clock), 1, MODELS)
    payload["segments"][1]["text"] = poison
    with pytest.raises(PayloadRefused):
        protocol.prepare_transcript(payload, 10_000_000)


def test_sender_refuses_oversize_payload(store: SessionStore, clock: Clock) -> None:
    payload = build_payload(store, finished_session(store, clock, n=200), 1, MODELS)
    size = len(protocol.prepare_transcript(payload, 10_000_000))
    with pytest.raises(PayloadRefused, match="above max_payload_bytes"):
        protocol.prepare_transcript(payload, size - 1)
    assert len(protocol.prepare_transcript(payload, size)) == size


def test_receiver_rejects_malformed_messages() -> None:
    with pytest.raises(ProtocolError, match="exceeds"):
        protocol.decode(b"{}" * 100, 50)
    for junk in (b"\xff\xfe", b"not json", b"[1,2]", b'{"x": 1}'):
        with pytest.raises(ProtocolError):
            protocol.decode(junk, 1000)
    with pytest.raises(ProtocolError, match="unsupported version 2"):
        protocol.kind_of({"schema": "scribe.transcript/2"})
    with pytest.raises(ProtocolError, match="unknown"):
        protocol.kind_of({"schema": "scribe.audio/1"})


@pytest.mark.slow
def test_two_hour_visit_is_chunked_and_reassembled(store: SessionStore, clock: Clock) -> None:
    # ~2 h at one utterance every 4 s, with quotes and backslashes that grow when escaped.
    sid = finished_session(store, clock, n=1800, words='he said "it hurts here" \\ and there ' * 3)
    data = protocol.prepare_transcript(build_payload(store, sid, 1, MODELS), 8_000_000)
    assert len(data) > 400_000
    parts = protocol.chunk(data, sid, 1, 65_536)
    assert len(parts) >= 7 and all(len(p) <= 65_536 for p in parts)
    decoded = [protocol.validate("chunk", protocol.decode(p, 65_536)) for p in parts]
    random.Random(2).shuffle(decoded)  # arrival order is not guaranteed after a resend
    assert protocol.join_chunks(decoded) == data
    with pytest.raises(ProtocolError, match="incomplete"):
        protocol.join_chunks(decoded[1:])
    bad = [dict(d) for d in decoded]
    bad[0]["data"] = bad[0]["data"][:-1] + "x"
    with pytest.raises(ProtocolError, match="SHA-256"):
        protocol.join_chunks(bad)


def test_small_transcript_is_one_message(store: SessionStore, clock: Clock) -> None:
    sid = finished_session(store, clock)
    data = protocol.prepare_transcript(build_payload(store, sid, 1, MODELS), 8_000_000)
    assert protocol.chunk(data, sid, 1, 65_536) == [data]


def test_topics() -> None:
    t = Topics("scribe", "site1", "dev-a")
    assert t.transcript == "scribe/site1/dev-a/transcript" and t.ack == "scribe/site1/dev-a/ack"
    assert protocol.parse_topic("scribe", t.status) == ("site1", "dev-a", "status")
    with pytest.raises(ValueError):
        Topics("scribe", "site1", "dev/+")
    with pytest.raises(ProtocolError):
        protocol.parse_topic("scribe", "scribe/site1/dev-a/x/y")


@pytest.mark.parametrize("kind", protocol.KINDS)
def test_schema_files_are_valid_draft7_and_closed(kind: str) -> None:
    import jsonschema

    schema = json.loads(Path(protocol.schema_path(kind)).read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["additionalProperties"] is False  # nothing can ride along, audio included
