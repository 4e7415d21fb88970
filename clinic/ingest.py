"""Turning received MQTT messages into stored transcripts and acks (no MQTT here, so it is easy to
test and to extend, e.g. with note generation after a transcript is stored).

Every message is judged on its own: anything malformed, oversized, nested too deep, with numbers
outside I-JSON, carrying binary data, of an unknown version or claiming another device's identity
is dropped, and the rest of the batch is stored and acked as usual. Warnings are rate-limited per
device (clinic.ratelog). Where the session and revision can be told, the device gets a "rejected"
ack so it stops resending the same bad message at full rate.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from clinic.config import IngestConfig
from clinic.ratelog import DeviceLogLimiter
from clinic.store import StoreResult, TranscriptRepository
from common import protocol
from common.protocol import ProtocolError, Topics

log = logging.getLogger(__name__)

Outgoing = tuple[str, dict[str, Any]]  # (topic, message) to publish at QoS 1
PartialKey = tuple[str, str, int, str]  # (device, session, revision, sha256)
_UNKNOWN_DEVICE = "(unknown device)"  # log key of messages whose topic names no device


class Rejected(ProtocolError):
    """An invalid transcript whose session and revision are known: the device gets a rejected ack."""

    def __init__(self, message: str, ack: Outgoing) -> None:
        super().__init__(message)
        self.ack = ack


@dataclass
class _Partial:
    parts: dict[int, dict[str, Any]] = field(default_factory=dict)
    size: int = 0
    first_seen: float = 0.0


@dataclass
class IngestStats:
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    dropped: int = 0
    chunks: int = 0


class Ingest:
    def __init__(self, prefix: str, repo: TranscriptRepository, cfg: IngestConfig,
                 clock: Callable[[], float] = time.monotonic,
                 on_stored: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.prefix = prefix
        self.repo = repo
        self.cfg = cfg
        self.clock = clock
        self.on_stored = on_stored  # hook for what follows storage (note generation, later)
        self.stats = IngestStats()
        self.warn = DeviceLogLimiter(log, cfg.log_interval_s, clock)
        self._partials: dict[PartialKey, _Partial] = {}
        self._partial_bytes = 0

    def handle_batch(self, messages: list[tuple[str, bytes]]) -> list[Outgoing]:
        """Process received (topic, payload) pairs; store valid transcripts in one transaction and
        return the acks to publish (only after that transaction committed). A bad message costs
        only itself: it is dropped (or refused with an ack) and the others go through."""
        ready: list[tuple[Topics, dict[str, Any], str]] = []
        out: list[Outgoing] = []
        self._expire()
        self.warn.flush()
        for topic, data in messages:
            device = _UNKNOWN_DEVICE
            try:
                site, device, leaf = protocol.parse_topic(self.prefix, topic)
                topics = Topics(self.prefix, site, device)
                if leaf == "status":
                    self._status(device, data)
                elif leaf == "transcript":
                    received = self._transcript(topics, data)
                    if received is not None:
                        ready.append((topics, *received))
                else:
                    raise ProtocolError(f"devices do not publish on {leaf!r}")
            except (ProtocolError, ValueError) as exc:  # ValueError: a topic level Topics refuses
                self.stats.dropped += 1
                self.warn.warning(device, "dropped message on %s: %s", topic[:200], exc)
                if isinstance(exc, Rejected):
                    out.append(exc.ack)
        if ready:
            results = self.repo.store_many([p for _, p, _ in ready], [d for _, _, d in ready])
            for (topics, payload, _), res in zip(ready, results, strict=True):
                out.append((topics.ack, self._ack(res)))
                self._count(topics.device_id, res)
                if res.status == "stored" and self.on_stored is not None:
                    try:
                        self.on_stored(payload)
                    except Exception:
                        log.exception("post-store hook failed for %s", res.session_id)
        return out

    def _count(self, device: str, res: StoreResult) -> None:
        if res.status == "stored":
            self.stats.stored += 1
        elif res.status == "duplicate":
            self.stats.duplicates += 1
            if res.error:
                self.warn.warning(device, "duplicate %s rev %d acknowledged again (%s)", res.session_id,
                                  res.revision, res.error)
        else:
            self.stats.rejected += 1
            self.warn.warning(device, "rejected %s rev %d: %s", res.session_id, res.revision, res.error)

    @staticmethod
    def _ack(res: StoreResult) -> dict[str, Any]:
        ack: dict[str, Any] = {"schema": "scribe.ack/1", "session_id": res.session_id, "revision": res.revision,
                               "status": res.status, "stored_at": time.time()}
        if res.error:
            ack["error"] = res.error[:1000]
        return ack

    def _status(self, device: str, data: bytes) -> None:
        msg = protocol.decode(data, 16_384)
        if protocol.kind_of(msg) != "status":
            raise ProtocolError("status topic carries a non-status message")
        protocol.validate("status", msg)
        if msg["device_id"] != device:
            raise ProtocolError(f"status for {msg['device_id']!r} published by {device!r}")
        self.repo.set_device_status(device, msg)

    def _transcript(self, topics: Topics, data: bytes) -> tuple[dict[str, Any], str] | None:
        """The validated transcript and the SHA-256 of its bytes, or None while chunks are missing."""
        msg = protocol.decode(data, self.cfg.max_message_bytes)
        kind = protocol.kind_of(msg)
        if kind == "chunk":
            self.stats.chunks += 1
            protocol.validate("chunk", msg)
            joined = self._add_chunk(topics.device_id, msg)
            if joined is None:
                return None
            msg = protocol.decode(joined, self.cfg.max_transcript_bytes)
            kind = protocol.kind_of(msg)
            data = joined
        if kind != "transcript":
            raise ProtocolError(f"transcript topic carries a {kind} message")
        try:
            protocol.validate("transcript", msg)
            protocol.check_text_only(msg)  # the device's own check: no audio or other binary in any field
            if (msg["device_id"], msg["site"]) != (topics.device_id, topics.site):
                raise ProtocolError(
                    f"payload claims device {msg['device_id']!r} at {msg['site']!r} but was published by "
                    f"{topics.device_id!r} at {topics.site!r}"
                )
        except ProtocolError as exc:
            sid, rev = msg.get("session_id"), msg.get("revision")
            if isinstance(sid, str) and len(sid) <= 64 and type(rev) is int and 1 <= rev <= protocol.MAX_REVISION:
                ack = self._ack(StoreResult(sid, rev, "rejected", str(exc)))
                raise Rejected(str(exc), (topics.ack, ack)) from None
            raise
        return msg, hashlib.sha256(data).hexdigest()

    # -- chunked transcripts: reassembly memory is bounded per device and overall ---------------

    def _add_chunk(self, device: str, msg: dict[str, Any]) -> bytes | None:
        if msg["index"] >= msg["count"]:
            raise ProtocolError(f"chunk index {msg['index']} of {msg['count']}")
        key = (device, msg["session_id"], msg["revision"], msg["sha256"])
        part = self._partials.get(key)
        if part is None:
            part = self._partials[key] = _Partial(first_seen=self.clock())
        if msg["index"] not in part.parts:
            size = len(msg["data"])
            if part.size + size > self.cfg.max_transcript_bytes:
                self._drop_partial(key)
                raise ProtocolError(f"chunked transcript {msg['session_id']} exceeds max_transcript_bytes")
            part.parts[msg["index"]] = msg
            part.size += size
            self._partial_bytes += size
        self._bound_partials(device)
        if key not in self._partials or len(part.parts) < msg["count"]:
            return None
        self._drop_partial(key)
        counts = {p["count"] for p in part.parts.values()}
        if len(counts) != 1:
            raise ProtocolError(f"chunks of {msg['session_id']} disagree on their count")
        return protocol.join_chunks(list(part.parts.values()))

    def _bound_partials(self, device: str) -> None:
        """A device over its own bounds loses its own oldest partial set; over the global bound, the
        device holding the most bytes loses its oldest. Another device's sets are never the price
        of one device's flood."""
        mine = sorted((k for k in self._partials if k[0] == device), key=lambda k: self._partials[k].first_seen)
        mine_bytes = sum(self._partials[k].size for k in mine)
        while mine and (len(mine) > self.cfg.max_partials_per_device
                        or mine_bytes > self.cfg.max_partial_bytes_per_device):
            oldest = mine.pop(0)
            mine_bytes -= self._partials[oldest].size
            self.warn.warning(device, "dropping incomplete transcript %s of %s: the device's reassembly bound "
                              "is reached", oldest[1], device)
            self._drop_partial(oldest)
        while self._partial_bytes > self.cfg.max_partial_bytes and self._partials:
            held: dict[str, int] = {}
            for k, p in self._partials.items():
                held[k[0]] = held.get(k[0], 0) + p.size
            biggest = max(held, key=lambda d: held[d])
            oldest = min((k for k in self._partials if k[0] == biggest), key=lambda k: self._partials[k].first_seen)
            self.warn.warning(biggest, "dropping incomplete transcript %s of %s: reassembly memory full",
                              oldest[1], biggest)
            self._drop_partial(oldest)

    def _drop_partial(self, key: PartialKey) -> None:
        part = self._partials.pop(key, None)
        if part is not None:
            self._partial_bytes -= part.size

    def _expire(self) -> None:
        now = self.clock()
        for key in [k for k, p in self._partials.items() if now - p.first_seen > self.cfg.chunk_timeout_s]:
            log.warning("incomplete transcript %s rev %d of %s expired; the device will resend", key[1], key[2],
                        key[0])
            self._drop_partial(key)
