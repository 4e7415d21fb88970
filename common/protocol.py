"""The device ↔ clinic MQTT contract: topics, message schemas, encoding and chunking.

Shared by the device (appliance.sync) and the clinic server (clinic/), so both sides validate
against the same JSON schema files (common/schema/*.json). docs/sync-protocol.md describes it
for people.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import fastjsonschema

from common import jsontext

KINDS = ("transcript", "chunk", "ack", "note", "command", "status", "templates")
# Topic leaf per direction; a chunk travels on the transcript topic.
DEVICE_PUBLISHES = ("transcript", "status")
CLINIC_PUBLISHES = ("ack", "note", "command")

# A run this long of base64/hex-like characters without a space is not dictated speech; it is
# how audio (or any binary) would be smuggled into a text field. So are 8 or more such "words" of
# 60+ characters in a row: base64 wrapped in lines (MIME, PEM). Matches start only at the start of
# a run and never backtrack into one, so a message of many 511-character runs costs linear time.
_BLOB_CHARS = "A-Za-z0-9+/=_-"
_ENCODED_BLOB = re.compile(
    rf"(?<![{_BLOB_CHARS}])(?:[{_BLOB_CHARS}]{{512,}}|(?:[{_BLOB_CHARS}]{{60,}}+\s+){{8,}})")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# The deepest message of the contract nests 3 levels (transcript > segments > segment); anything
# much deeper is refused before json.loads sees it (its recursion is the attack).
MAX_DEPTH = 16
# I-JSON (RFC 7493): integers every JSON implementation holds exactly; SQLite's INTEGER holds them too.
MAX_SAFE_INT = 2**53 - 1
# transcript.v1.json and chunk.v1.json "revision": {"maximum": ...}; one edit-and-send per revision.
MAX_REVISION = 1_000_000
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_OPENERS_RUN = re.compile(rf"[\[{{]{{{MAX_DEPTH + 1}}}")
# Envelope bytes around a chunk's data (ids, digest, counters) with generous headroom.
_CHUNK_OVERHEAD = 400
# The smallest message a chunked transcript can travel in, and the most parts a set may have.
MIN_CHUNK_MESSAGE_BYTES = _CHUNK_OVERHEAD + 256
MAX_CHUNKS = 10_000  # chunk.v1.json: count


class ProtocolError(ValueError):
    """A message that does not follow the contract: logged and dropped by the receiver."""


class PayloadRefused(ProtocolError):
    """The sender will not send this payload (too big, or carries binary data)."""


def topic_level_error(value: str) -> str | None:
    """Why ``value`` cannot be one level of a topic name, or None (also a config rule)."""
    if not value or any(c in value for c in "/+#\x00"):
        return "must be non-empty and contain none of / + #"
    return None


def ident_error(value: str) -> str | None:
    """Why ``value`` cannot be a device id or site (the transcript schema's `ident`), or None.
    The config rules use this, so a device never starts with an id its own transcripts would fail."""
    spec = _schema("transcript")["$defs"]["ident"]
    if not spec["minLength"] <= len(value) <= spec["maxLength"] or not re.fullmatch(spec["pattern"], value):
        return (f"must be 1 to {spec['maxLength']} letters, digits, '.', '_' or '-', starting with a letter or "
                "digit (it is a level of every MQTT topic, and none of / + # or spaces)")
    return None


@dataclass(frozen=True)
class Topics:
    """Topic names of one device: <prefix>/<site>/<device_id>/<leaf>."""

    prefix: str
    site: str
    device_id: str

    def __post_init__(self) -> None:
        for part in (self.prefix, self.site, self.device_id):
            if why := topic_level_error(part):
                raise ValueError(f"topic level {part!r} {why}")

    def topic(self, leaf: str) -> str:
        return f"{self.prefix}/{self.site}/{self.device_id}/{leaf}"

    @property
    def transcript(self) -> str:
        return self.topic("transcript")

    @property
    def ack(self) -> str:
        return self.topic("ack")

    @property
    def note(self) -> str:
        return self.topic("note")

    @property
    def status(self) -> str:
        return self.topic("status")

    @property
    def command(self) -> str:
        return self.topic("command")


def templates_topic(prefix: str) -> str:
    """The clinic's one retained list of note templates, for every device: <prefix>/templates
    (two levels, so it can never be a device's topic)."""
    return f"{prefix}/templates"


def parse_topic(prefix: str, topic: str) -> tuple[str, str, str]:
    """(site, device_id, leaf) of a topic under `prefix`, or ProtocolError."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != prefix or not all(parts):
        raise ProtocolError(f"topic {topic!r} is not {prefix}/<site>/<device id>/<leaf>")
    return parts[1], parts[2], parts[3]


def _schema(kind: str) -> dict[str, Any]:
    if kind not in KINDS:
        raise ValueError(f"unknown message kind {kind!r}")
    text = resources.files("common").joinpath("schema", f"{kind}.v1.json").read_text("utf-8")
    return dict(json.loads(text))


@cache
def _validator(kind: str) -> Callable[[Any], Any]:
    # fastjsonschema compiles the schema to Python: ~7x faster than interpreting it.
    return fastjsonschema.compile(_schema(kind))


def schema_path(kind: str) -> str:
    """File of a message schema (for docs and for other implementations of the clinic side)."""
    return str(resources.files("common").joinpath("schema", f"{kind}.v1.json"))


# -- transcripts: the same schema, checked in bulk ---------------------------------------------
# A 15-minute visit has ~150 segments; fastjsonschema spends ~30 µs on each (≈ 4-5 ms a
# transcript, on both sides). The envelope still goes through the compiled schema; the segments
# are checked with a few C-level passes that accept exactly what the segment schema below
# accepts, and anything they do not accept goes through the full compiled schema, so the result
# (and the error message) is always the schema's. tests/test_sync_protocol.py cross-checks both.

_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_UUID_LINES = re.compile(f"(?:{_UUID}(?:\\n{_UUID})*)?")
_SEGMENT_KEYS = frozenset(("id", "start", "end", "speaker", "text"))
_NUMBER = (int, float)  # exact types: bool is an int subclass but not a JSON number
# What the bulk check implements; if transcript.v1.json says otherwise, it is not used.
_SEGMENTS_IMPLEMENTED = {
    "type": "array", "maxItems": 100000,
    "items": {
        "type": "object", "additionalProperties": False, "required": ["id", "start", "end", "speaker", "text"],
        "properties": {
            "id": {"$ref": "#/$defs/uuid"},
            "start": {"type": "number", "minimum": 0},
            "end": {"type": "number", "minimum": 0},
            "speaker": {"type": "string", "maxLength": 64},
            "text": {"$ref": "#/$defs/text"},
        },
    },
}
_DEFS_IMPLEMENTED = {
    "uuid": {"type": "string", "pattern": f"^{_UUID}$"},
    "text": {"type": "string", "maxLength": 20000,
             "pattern": "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f]*$"},
}


@cache
def _envelope_validator() -> Callable[[Any], Any] | None:
    """The transcript schema minus the per-segment rules, or None when the schema file's segment
    rules are not the ones the bulk check implements (then every transcript takes the full path)."""
    schema = _schema("transcript")
    props = dict(schema["properties"])
    defs = schema.get("$defs", {})
    if props.get("segments") != _SEGMENTS_IMPLEMENTED or any(defs.get(k) != v for k, v in _DEFS_IMPLEMENTED.items()):
        return None
    props["segments"] = {"type": "array", "maxItems": 100000}
    return fastjsonschema.compile({**schema, "properties": props})


def _segments_valid(segments: Any) -> bool:
    """True only if every segment satisfies the segment schema and ends no earlier than it starts."""
    if type(segments) is not list or len(segments) > 100000:
        return False
    ids: list[Any] = []
    texts: list[Any] = []
    for seg in segments:
        if type(seg) is not dict or seg.keys() != _SEGMENT_KEYS:
            return False
        start, end, speaker, text = seg["start"], seg["end"], seg["speaker"], seg["text"]
        if type(start) not in _NUMBER or type(end) not in _NUMBER or not 0 <= start <= end:
            return False  # NaN fails here too and gets the schema's verdict
        if type(speaker) is not str or len(speaker) > 64 or type(text) is not str or len(text) > 20000:
            return False
        ids.append(seg["id"])
        texts.append(text)
    if not all(type(i) is str for i in ids):
        return False
    joined = "\n".join(ids)
    # UUIDs are 36 characters and contain no newline, so a full match of n lines of exactly
    # n*37-1 characters means every id is one UUID.
    if len(joined) != max(0, 37 * len(ids) - 1) or _UUID_LINES.fullmatch(joined) is None:
        return False
    return _CONTROL.search("\n".join(texts)) is None  # _CONTROL is what $defs/text forbids; newline is allowed


def validate(kind: str, message: Any) -> dict[str, Any]:
    """Return `message` if it matches the schema of `kind`, else raise ProtocolError naming the field."""
    if kind == "transcript":
        envelope = _envelope_validator()
        if envelope is not None and isinstance(message, dict) and _segments_valid(message.get("segments")):
            _run(kind, envelope, message)
            return message
    _run(kind, _validator(kind), message)
    if kind == "transcript":
        for seg in message["segments"]:
            if seg["end"] < seg["start"]:
                raise ProtocolError(f"transcript segment {seg['id']} ends before it starts")
    return message


def _run(kind: str, validator: Callable[[Any], Any], message: Any) -> None:
    try:
        validator(message)
    except fastjsonschema.JsonSchemaValueException as err:
        where = "/".join(str(p) for p in err.path[1:]) or "(top level)"
        raise ProtocolError(f"{kind} message invalid at {where}: {err.message[:200]}") from None


def encode(message: dict[str, Any]) -> bytes:
    """Compact, ASCII-only JSON (so byte length = character length, which chunking relies on)."""
    return json.dumps(message, ensure_ascii=True, separators=(",", ":"), sort_keys=True,
                      allow_nan=False).encode("ascii")


def decode(data: bytes, max_bytes: int) -> dict[str, Any]:
    """Parse one received message, or ProtocolError: too big, nested deeper than MAX_DEPTH, not
    UTF-8 JSON, numbers outside I-JSON (NaN, Infinity, 1e999, integers beyond 2^53), not an object.
    Size and depth are checked before parsing, so no message can make the parser recurse or the
    receiver store a number SQLite cannot hold."""
    if len(data) > max_bytes:
        raise ProtocolError(f"message of {len(data)} bytes exceeds the limit of {max_bytes}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"message is not UTF-8 JSON: {exc}") from None
    if _nesting_exceeds(text, MAX_DEPTH):
        raise ProtocolError(f"message nests deeper than {MAX_DEPTH} levels")
    try:
        # NaN / Infinity are not JSON: never stored, never printed (common.jsontext).
        obj = json.loads(text, parse_constant=jsontext.refuse_constant, parse_float=jsontext.finite_float,
                         parse_int=_safe_int)
    except ProtocolError:
        raise
    except ValueError as exc:  # JSONDecodeError, non-finite numbers, and int() refusing a 5,000-digit number
        raise ProtocolError(f"message is not UTF-8 JSON: {str(exc)[:200]}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("schema"), str):
        raise ProtocolError("message is not a JSON object with a 'schema' field")
    return obj


def _nesting_exceeds(text: str, limit: int) -> bool:
    """Whether arrays/objects nest deeper than `limit` (brackets inside strings do not count)."""
    if text.count("[") + text.count("{") <= limit:
        return False  # the common small message: no scan needed
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    if _OPENERS_RUN.search(brackets):
        return True  # "[[[[..." needs no counting
    depth = deepest = 0
    for c in brackets:
        depth += 1 if c in "[{" else -1
        deepest = max(deepest, depth)
    return deepest > limit


def _safe_int(literal: str) -> int:
    value = int(literal) if len(literal) <= 17 else MAX_SAFE_INT + 1
    if abs(value) > MAX_SAFE_INT:
        raise ProtocolError(f"integer {literal[:40]} is beyond 2^53")
    return value


def kind_of(message: dict[str, Any]) -> str:
    """'transcript' for {"schema": "scribe.transcript/1", ...}; ProtocolError for unknown versions."""
    name = message.get("schema", "")
    match = re.fullmatch(r"scribe\.([a-z]+)/(\d+)", str(name))
    if not match or match.group(1) not in KINDS:
        raise ProtocolError(f"unknown message schema {name!r}")
    if match.group(2) != "1":
        raise ProtocolError(f"unsupported version {match.group(2)} of {match.group(1)} (this side speaks 1)")
    return match.group(1)


def check_text_only(value: Any) -> None:
    """Text only (PayloadRefused otherwise): bytes-like values, control characters and long encoded
    blobs are refused anywhere. The device checks what it sends, the clinic what it receives.
    One pass collects the strings and two regex searches run over them joined by a space (neither
    a control character nor a blob character, so no false match across values); only a hit walks
    the structure again to say where."""
    strings: list[str] = []
    stack = [value]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is str:
            strings.append(v)
        elif t is dict:
            stack.extend(v.values())
        elif t is list or t is tuple:
            stack.extend(v)
        elif isinstance(v, (str, dict, list, tuple, bytes, bytearray, memoryview)):
            _locate_binary(value)  # subclasses and binary: the exact walk decides
            return
    # Only a string of 512+ characters can hold a blob run: the regex skips the rest.
    if _CONTROL.search(" ".join(strings)) or _ENCODED_BLOB.search(" ".join(v for v in strings if len(v) >= 512)):
        _locate_binary(value)


def _locate_binary(value: Any, where: str = "") -> None:
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise PayloadRefused(f"binary value at {where or 'top level'}: transcripts carry text only")
    if isinstance(value, str):
        if _CONTROL.search(value):
            raise PayloadRefused(f"control characters at {where}: looks like binary data")
        if _ENCODED_BLOB.search(value):
            raise PayloadRefused(f"an encoded blob at {where}: transcripts carry no audio or binary data")
    elif isinstance(value, dict):
        for k, v in value.items():
            _locate_binary(v, f"{where}/{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _locate_binary(v, f"{where}/{i}")


def prepare_transcript(payload: dict[str, Any], max_payload_bytes: int) -> bytes:
    """Sender side: refuse binary content and oversize payloads, validate, and encode."""
    check_text_only(payload)
    validate("transcript", payload)
    data = encode(payload)
    if len(data) > max_payload_bytes:
        raise PayloadRefused(
            f"transcript {payload['session_id']} revision {payload['revision']} is {len(data)} bytes, "
            f"above max_payload_bytes={max_payload_bytes}"
        )
    return data


def chunk(data: bytes, session_id: str, revision: int, max_message_bytes: int) -> list[bytes]:
    """Split an encoded transcript into messages of at most `max_message_bytes` each.

    A transcript that fits is sent as itself; otherwise as scribe.chunk/1 parts whose `data`
    strings concatenate back to `data`. The data is ASCII (see encode()), so only quotes and
    backslashes grow when the part is embedded as a JSON string.
    """
    if len(data) <= max_message_bytes:
        return [data]
    if max_message_bytes < MIN_CHUNK_MESSAGE_BYTES:
        raise ValueError(f"chunk size {max_message_bytes} is too small for the chunk envelope")
    budget = max_message_bytes - _CHUNK_OVERHEAD
    text = data.decode("ascii")
    digest = hashlib.sha256(data).hexdigest()
    parts: list[str] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + budget)
        while True:
            piece = text[start:end]
            grown = len(piece) + piece.count('"') + piece.count("\\")
            if grown <= budget:
                break
            end -= max(1, grown - budget)
        parts.append(piece)
        start = end
    if len(parts) > MAX_CHUNKS:
        raise PayloadRefused(f"transcript of {len(data)} bytes needs {len(parts)} chunks of {max_message_bytes} "
                             f"bytes; a chunk set has at most {MAX_CHUNKS}")
    return [
        encode({"schema": "scribe.chunk/1", "session_id": session_id, "revision": revision, "index": i,
                "count": len(parts), "sha256": digest, "data": piece})
        for i, piece in enumerate(parts)
    ]


def join_chunks(parts: list[dict[str, Any]]) -> bytes:
    """Receiver side: the transcript bytes from a complete, validated set of chunk messages."""
    parts = sorted(parts, key=lambda p: p["index"])
    count = parts[0]["count"]
    if [p["index"] for p in parts] != list(range(count)):
        raise ProtocolError("chunk set is incomplete or has duplicates")
    data = "".join(p["data"] for p in parts).encode("utf-8")
    if hashlib.sha256(data).hexdigest() != parts[0]["sha256"]:
        raise ProtocolError(f"chunks of {parts[0]['session_id']} do not match their SHA-256")
    return data
