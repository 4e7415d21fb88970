"""The sync's batched fast paths give exactly what the one-at-a-time paths give: the bulk schema
check vs the compiled schema, read_for_delivery vs read_transcript, mark_acked_many vs mark_acked."""

from __future__ import annotations

import copy
import random
from typing import Any

import fastjsonschema
import pytest

from appliance.store import SessionNotFound, SessionStore, State
from appliance.sync.payload import build_payload
from common import protocol
from tests.broker import make_finished_sessions
from tests.conftest import Clock

UUID = "01a21b39-88f9-7289-82c3-0916dfeecad9"


def full_schema_accepts(msg: Any) -> bool:
    try:
        protocol._validator("transcript")(msg)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return not any(s["end"] < s["start"] for s in msg["segments"])  # as validate() says it


def mutations(p: dict[str, Any]) -> list[dict[str, Any]]:
    """Valid and invalid variants of one segment, each a full payload."""
    seg_variants: list[Any] = [
        {}, [], "x", None, {"id": UUID},
        *({**p["segments"][0], k: v} for k, v in [
            ("id", UUID.upper()), ("id", UUID + "\n"), ("id", UUID[:-1]), ("id", 7), ("id", "\n".join([UUID] * 2)),
            ("start", -1.0), ("start", True), ("start", "0"), ("start", 0), ("end", 10**6), ("end", 0.0),
            ("end", float("nan")), ("speaker", "S" * 64), ("speaker", "S" * 65), ("speaker", 1), ("speaker", "\x01"),
            ("text", "tab\there\nnewline"), ("text", "bell\x07"), ("text", "del\x7f"), ("text", "t" * 20000),
            ("text", "t" * 20001), ("text", b"bytes"), ("text", ""), ("extra", 1),
        ]),
    ]
    out = []
    for variant in seg_variants:
        for where in (0, len(p["segments"]) - 1):
            q = copy.deepcopy(p)
            q["segments"][where] = variant
            out.append(q)
    out.append({**p, "segments": []})
    out.append({**p, "segments": tuple(p["segments"])})
    out.append({**p, "name": "bad\x00name"})
    return out


def test_bulk_segment_check_agrees_with_the_compiled_schema(store: SessionStore) -> None:
    [sid] = make_finished_sessions(store, 1, segments=20)
    p = build_payload(store, sid, 1, [])
    assert protocol._envelope_validator() is not None  # the bulk check is in use for this schema
    variants = mutations(p)
    assert sum(map(full_schema_accepts, variants)) >= 8 and sum(not full_schema_accepts(v) for v in variants) >= 20
    for q in variants:
        try:
            protocol.validate("transcript", q)
            accepted = True
        except protocol.ProtocolError:
            accepted = False
        assert accepted == full_schema_accepts(q), q["segments"][:1] + q["segments"][-1:]


def test_binary_check_finds_what_the_walk_finds() -> None:
    text = {"a": ["fine words", {"b": "x" * 511}], "c": ("ok",)}
    protocol.check_text_only(text)
    for bad, message in ((b"\x00", "binary value at /a/1/b"), ("A" * 600, "encoded blob at /a/1/b"),
                         ("ctl\x01", "control characters at /a/1/b")):
        with pytest.raises(protocol.PayloadRefused, match=message):
            protocol.check_text_only({"a": ["fine words", {"b": bad}], "c": ("ok",)})


def test_read_for_delivery_equals_read_transcript_and_is_audited_the_same(store: SessionStore,
                                                                         clock: Clock) -> None:
    a, b = make_finished_sessions(store, 2, segments=12)
    segs = store.read_transcript(a, "clinician", "review")
    store.edit_segment_text(a, segs[3].id, "corrected", "clinician")
    store.swap_speakers(a, "S1", "S2", "clinician")
    store.delete_segment(a, segs[5].id, "clinician")
    store.set_speaker_name(a, "S1", "Dr Osei", "clinician")
    wanted = [(a, 1), (a, 3), (a, 5), (b, 1), (a, 9), ("0190aaaa-0000-7000-8000-000000000000", 1)]
    before = len(store.audit_events())
    got = store.read_for_delivery(wanted, "sync", "send to clinic")
    new_events = store.audit_events()[before:]
    assert isinstance(got[4], ValueError) and isinstance(got[5], SessionNotFound)
    expected_events = []
    for (sid, rev), result in zip(wanted[:4], got[:4], strict=True):
        assert not isinstance(result, Exception)
        session, rows = result
        assert session == store.get_session(sid)
        ref = store.read_transcript(sid, "sync", "send to clinic", revision=rev)
        assert rows == [(s.id, s.start, s.end, s.speaker, s.text, s.speaker_name) for s in ref]
        expected_events.append(store.audit_events(sid)[-1])
    assert [(e.actor, e.action, e.session_id, e.detail) for e in new_events] == \
        [(e.actor, e.action, e.session_id, e.detail) for e in expected_events]


def test_mark_acked_many_matches_mark_acked(store: SessionStore) -> None:
    ids = make_finished_sessions(store, 4, segments=2)
    items = [store.outbox_items(i)[0] for i in ids]
    store.mark_acked(items[0].id)
    random.Random(1).shuffle(ids)
    settled = store.mark_acked_many([(i, 1) for i in ids] + [(ids[0], 1)])
    assert sorted(settled) == sorted(i.id for i in items[1:])
    for i in ids:
        assert store.get_session(i).state is State.SYNCED and store.outbox_items(i)[0].acked_at is not None
    one, many = store.audit_events(items[0].session_id)[-1], store.audit_events(items[1].session_id)[-1]
    assert (one.actor, one.action, set(one.detail)) == (many.actor, many.action, set(many.detail))
    assert many.detail == {"revision": 1, "outbox": items[1].id}
    assert store.pending_count() == 0
