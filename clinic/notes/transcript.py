"""Transcripts from where they come: a stored sync payload, the segments JSON that
`appliance transcribe --json` prints, or an ACI-Bench dialogue ("[doctor] …" lines)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from clinic.notes.model import Segment, Transcript
from common import protocol
from common.protocol import ProtocolError


class TranscriptError(ValueError):
    """Input that is not a transcript; the message says what is wrong."""


def from_payload(payload: dict[str, Any]) -> Transcript:
    """A validated scribe.transcript/1 payload (as stored at the clinic)."""
    return Transcript(
        segments=tuple(Segment(s["id"], float(s["start"]), float(s["end"]), s["speaker"], s["text"])
                       for s in payload["segments"]),
        speakers=dict(payload.get("speakers", {})), name=payload.get("name", ""),
        session_id=payload.get("session_id", ""), revision=int(payload.get("revision", 0)),
        templates=tuple(payload.get("templates", ())))


def from_segments(items: list[Any], where: str = "segments") -> Transcript:
    """`appliance transcribe --json`: [{start, end, speaker, text}, …]; ids s1, s2, … by position."""
    segments = []
    for i, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise TranscriptError(f"{where}[{i - 1}] is not an object")
        for key, kind in (("start", (int, float)), ("end", (int, float)), ("speaker", str), ("text", str)):
            if not isinstance(item.get(key), kind) or isinstance(item.get(key), bool):
                expected = "string" if kind is str else "number"
                raise TranscriptError(f"{where}[{i - 1}].{key} is missing or not a {expected}")
        seg_id = item.get("id", f"s{i}")
        if not isinstance(seg_id, str):
            raise TranscriptError(f"{where}[{i - 1}].id is not a string")
        segments.append(Segment(seg_id, float(item["start"]), float(item["end"]), item["speaker"], item["text"]))
    return Transcript(segments=tuple(segments))


def load(path: str) -> Transcript:
    """A transcript file of either JSON shape, or TranscriptError naming the file and the problem."""
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except OSError as exc:
        raise TranscriptError(f"{path}: cannot read: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TranscriptError(f"{path}: not JSON: {exc}") from None
    if isinstance(data, list):
        return from_segments(data, f"{path}: segment")
    if isinstance(data, dict) and data.get("schema") == "scribe.transcript/1":
        try:
            protocol.validate("transcript", data)
        except ProtocolError as exc:
            raise TranscriptError(f"{path}: not a valid transcript payload: {exc}") from None
        return from_payload(data)
    raise TranscriptError(f"{path}: expected a list of segments (appliance transcribe --json) or a "
                          f"scribe.transcript/1 payload")


_TURN = re.compile(r"^\[(\w+)\]\s*(.*)$")
_ACI_NAMES = {"doctor": "Clinician", "patient": "Patient"}


def from_dialogue(dialogue: str) -> Transcript:
    """ACI-Bench: one "[doctor] text" / "[patient] text" turn a line; ids L1, L2, … by line."""
    segments = []
    speakers: dict[str, str] = {}
    for n, line in enumerate(dialogue.splitlines(), 1):
        m = _TURN.match(line.strip())
        if not m:
            continue
        label = m.group(1)
        speakers[label] = _ACI_NAMES.get(label, "Other")
        segments.append(Segment(f"L{n}", float(n), float(n) + 1, label, m.group(2)))
    return Transcript(segments=tuple(segments), speakers=speakers)
