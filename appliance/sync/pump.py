"""The device's outbox pump: delivers the outbox to the clinic and applies what comes back, over
any transport (appliance.sync.transport.MqttTransport on a device; an in-memory one in tests).

Durability lives in the store's outbox, not here: a session is 'synced' only when the clinic's
ack for that revision arrives, and every attempt is scheduled in the database first, so a crash,
a broker restart or a lost ack only ever leads to a resend, which the clinic dedupes.

The pump owns the window of transcripts awaiting their ack, the backoff between sends, the
clinic's acks, notes, commands and template list, the status beat and what status() reports.
The transport only moves bytes: it connects, publishes, subscribes and hands incoming messages
to the pump's TransportListener methods (from its own thread; they only hand over).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from appliance import __version__
from appliance.config.schema import ApplianceConfig
from appliance.daemon.alerts import Alerts
from appliance.store import IllegalTransition, OutboxItem, SessionClosed, SessionNotFound, SessionStore
from appliance.sync.announced import announced_path, save_announced
from appliance.sync.payload import build_payloads, model_info
from common import protocol
from common.protocol import PayloadRefused, ProtocolError, Topics

log = logging.getLogger(__name__)

_BATCH = 50  # outbox rows read and marked per transaction
_INBOX_MAX_BYTES = 1_000_000  # acks, notes and commands are small; anything bigger is dropped
STATUS_INTERVAL_S = 30.0  # the status beat; the clinic counts a room silent after a few missed


class TransportListener(Protocol):
    """What a transport tells the pump, from the transport's own thread."""

    def link_up(self, max_packet: int | None) -> None:
        """Connected and subscribed; `max_packet`: the largest packet the peer accepts (None: no limit stated)."""

    def link_down(self, error: str) -> None:
        """Not connected (any more); `error` says why in words ("" for a clean close)."""

    def delivery_refused(self, error: str) -> None:
        """The peer refused a message this device published (`error`, a sentence), or accepts them
        again (`error` empty)."""

    def received(self, topic: str, data: bytes) -> None:
        """A message on one of the subscribed topics."""


class Transport(Protocol):
    """A link to the clinic: at-least-once delivery of whole messages on named topics."""

    @property
    def peer(self) -> str:
        """Who the link goes to, for the status ("host:port")."""

    def identity_problem(self) -> str:
        """What in the device's config disagrees with the credentials it connects with ("" if nothing)."""

    def overhead(self, topic: str) -> int:
        """Bytes a message on `topic` takes beyond its payload, against the peer's packet limit."""

    def open(self, listener: TransportListener, subscriptions: Sequence[str], will: tuple[str, bytes]) -> None:
        """Start connecting in the background, reconnecting until close(); on every connection
        subscribe to `subscriptions` and leave `will` (topic, retained message) for the peer to
        publish should the link die. Raises OSError or ValueError if it cannot even start
        (e.g. a certificate not provisioned)."""

    def publish(self, topic: str, data: bytes, *, retain: bool = False) -> None:
        """Queue a message for delivery at least once."""

    def close(self) -> None:
        """Disconnect cleanly (no will) and stop."""


class OutboxPump:
    def __init__(self, cfg: ApplianceConfig, store: SessionStore, transport: Transport, *,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic,
                 alerts: Alerts | None = None) -> None:
        self.cfg = cfg
        self.sc = cfg.sync
        self.store = store
        self.transport = transport
        self.clock = clock
        self.monotonic = monotonic
        self.topics = Topics(self.sc.topic_prefix, cfg.device.site, cfg.device.id)
        self._templates_topic = protocol.templates_topic(self.sc.topic_prefix)
        self.models = model_info(cfg)
        self._inbox: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._connected = threading.Event()
        self._in_flight: dict[int, float] = {}  # outbox id → monotonic deadline of its ack
        self._last_ack_at: float | None = None
        self._last_error = ""
        self._status_sent_at: float | None = None  # monotonic; None: due now
        self.alerts = alerts
        if alerts is not None:
            alerts.add_listener(self._alerts_changed)
        self._message_limit = self.sc.chunk_bytes  # lowered to what the peer accepts (link_up)
        self._packet_problem = ""  # the peer's packet limit leaves no room for a transcript chunk
        self._refused = ""  # the peer refuses what this device publishes (ACL: id or site not its certificate's)

    # -- for the panel / status ----------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        # Connected but refused is not connected as far as delivery goes: nothing gets through.
        return {
            "enabled": True,
            "connected": self.is_connected(),
            "broker": self.transport.peer,
            "pending": self.store.pending_count(),
            "last_ack_at": self._last_ack_at,
            "last_error": self._last_error,
        }

    def is_connected(self) -> bool:
        """Connected, and the peer takes what this device publishes."""
        return self._connected.is_set() and not self._refused

    def _alerts_changed(self) -> None:
        self._status_sent_at = None  # the clinic hears of a new (or cleared) alert now, not in 30 s
        self._wake.set()

    def wake(self) -> None:
        """Look at the outbox now (e.g. right after the clinician pressed Send)."""
        self._wake.set()

    # -- TransportListener (the transport's thread): only hand over, never touch the store here --

    def link_up(self, max_packet: int | None) -> None:
        self._learn_packet_limit(max_packet)
        self._in_flight.clear()  # unacked sends are due again at their scheduled time anyway
        self._connected.set()
        self._status_sent_at = None
        log.info("connected to clinic broker %s", self.transport.peer)
        self._wake.set()

    def link_down(self, error: str) -> None:
        if error:
            self._last_error = error
        if self._connected.is_set():
            log.warning("disconnected from clinic broker: %s", error or "closed")
        self._connected.clear()

    def delivery_refused(self, error: str) -> None:
        # Every publish of this device goes to its own topics: a refusal means the peer does not
        # let this identity use them, and every message would be dropped the same way.
        if error:
            if not self._refused:
                self._refused = error
                log.error("%s", error)
            self._last_error = self._refused
        elif self._refused:
            log.info("the clinic broker accepts this device's messages again")
            self._refused = ""

    def received(self, topic: str, data: bytes) -> None:
        self._inbox.put((topic, data))
        self._wake.set()

    def _learn_packet_limit(self, peer_max: int | None) -> None:
        """Fit messages to the peer's packet limit: a message above it makes an MQTT broker drop the
        connection, and the same message would be sent again on every reconnect."""
        limit, self._packet_problem = self.sc.chunk_bytes, ""
        overhead = self.transport.overhead(self.topics.transcript)
        room = peer_max - overhead if peer_max else limit
        if room < protocol.MIN_CHUNK_MESSAGE_BYTES:
            self._packet_problem = (
                f"the clinic broker accepts packets of at most {peer_max} bytes (its max_packet_size), too small "
                f"for a transcript chunk: raise max_packet_size on the broker to "
                f"{protocol.MIN_CHUNK_MESSAGE_BYTES + overhead} bytes or more (shipped: 262144); nothing is sent "
                f"until then")
            log.error("%s", self._packet_problem)
        elif room < limit:
            log.warning("[sync] chunk_bytes is %d but the clinic broker accepts packets of at most %d bytes: "
                        "sending transcripts in messages of at most %d bytes", limit, peer_max, room)
            limit = room
        self._message_limit = limit

    # -- the component ---------------------------------------------------------------------------

    def _status_message(self, state: str) -> bytes:
        msg = {
            "schema": "scribe.status/1", "state": state, "device_id": self.cfg.device.id,
            "site": self.cfg.device.site, "room": self.cfg.device.room[:256],
            "pending": self.store.pending_count() if state == "online" else 0,
            "version": __version__, "ts": self.clock(),
        }
        if state == "online" and self.alerts is not None and (alerts := self.alerts.active()):
            msg["alerts"] = alerts[:16]
        return protocol.encode(protocol.validate("status", msg))

    def run(self, stop: threading.Event) -> None:
        """The supervised component: open the link, pump until `stop`, say offline and close."""
        self.open()
        try:
            while not stop.is_set():
                self._wake.clear()
                self.step()
                self._wake.wait(self.sc.poll_interval_s)
        finally:
            self.close()

    def open(self) -> None:
        """Put the outbox in order for this device's identity and start the transport."""
        hint = self.transport.identity_problem()
        if hint:  # the broker will refuse everything; say why before it does
            self._last_error = hint
            log.error("sync: %s", hint)
        edited = self.store.requeue_unsent_edits(actor="sync")
        if edited:
            log.warning("%d synced visit(s) had edits the clinic never received: queued again", len(edited))
        moved = self.store.readdress_pending(self.cfg.device.id, self.cfg.device.site, actor="sync")
        if moved:
            log.warning("%d queued visit(s) recorded under another device id or site now go out as %s/%s",
                        moved, self.cfg.device.site, self.cfg.device.id)
        subscriptions = (self.topics.ack, self.topics.note, self.topics.command, self._templates_topic)
        # The will is retained, so the clinic sees a device that vanished as offline, not as stale online.
        try:
            self.transport.open(self, subscriptions, (self.topics.status, self._status_message("offline")))
        except (OSError, ValueError) as exc:  # e.g. certificate not provisioned: shown, retried later
            self._last_error = str(exc)
            raise

    def close(self) -> None:
        """Say offline (retained) while still connected, then close the transport."""
        if self._connected.is_set():
            self.transport.publish(self.topics.status, self._status_message("offline"), retain=True)
        self.transport.close()
        self._connected.clear()

    def step(self) -> None:
        """One round: apply what came in, then (connected) the status beat and the sends now due."""
        self._process_inbox()
        if self._connected.is_set():
            self._publish_status()
            self._send_due()

    def _publish_status(self) -> None:
        now = self.monotonic()
        if self._status_sent_at is None or now - self._status_sent_at >= STATUS_INTERVAL_S:
            self._status_sent_at = now
            self.transport.publish(self.topics.status, self._status_message("online"), retain=True)

    # -- sending ---------------------------------------------------------------------------------

    def _delay(self, attempts: int) -> float:
        return min(self.sc.ack_timeout_s * (2 ** min(attempts, 30)), self.sc.backoff_max_s)

    def _send_due(self) -> None:
        if self._packet_problem:
            self._last_error = self._packet_problem
            return
        now_mono = self.monotonic()
        for oid in [o for o, deadline in self._in_flight.items() if deadline <= now_mono]:
            del self._in_flight[oid]
        now = self.clock()
        moved = self.store.clamp_schedule(now, self.sc.backoff_max_s)
        if moved:
            log.warning("wall clock went back: %d pending deliveries rescheduled to now", moved)
        while self._connected.is_set():
            free = self.sc.max_in_flight - len(self._in_flight)
            if free <= 0:
                return
            due = [i for i in self.store.next_due(now, limit=min(free, _BATCH) + len(self._in_flight))
                   if i.id not in self._in_flight][:free]
            if not due:
                return
            for item, messages in self._prepare(due, now):
                self._in_flight[item.id] = self.monotonic() + self._delay(item.attempts)
                for data in messages:
                    self.transport.publish(self.topics.transcript, data)

    def _prepare(self, due: list[OutboxItem], now: float) -> list[tuple[OutboxItem, list[bytes]]]:
        """Read and encode a batch, recording each attempt and its retry time in one transaction
        (one audited read per session, one fsync for the batch)."""
        out: list[tuple[OutboxItem, list[bytes]]] = []
        schedule: list[tuple[int, float]] = []
        with self.store.batch():
            payloads = build_payloads(self.store, [(i.session_id, i.revision) for i in due], self.models,
                                      device_id=self.cfg.device.id, site=self.cfg.device.site)
            for item, payload in zip(due, payloads, strict=True):
                try:
                    if isinstance(payload, Exception):
                        raise payload
                    data = protocol.prepare_transcript(payload, self.sc.max_payload_bytes)
                    out.append((item, protocol.chunk(data, item.session_id, item.revision, self._message_limit)))
                    schedule.append((item.id, now + self._delay(item.attempts)))
                except (PayloadRefused, ProtocolError, ValueError, SessionNotFound, SessionClosed) as exc:
                    # Not sendable as it is (e.g. too big): keep it, say so, retry only rarely.
                    self._last_error = f"session {item.session_id} revision {item.revision} not sent: {exc}"
                    log.error("%s", self._last_error)
                    schedule.append((item.id, now + self.sc.backoff_max_s))
            self.store.mark_attempts(schedule)
        return out

    # -- receiving -------------------------------------------------------------------------------

    def _process_inbox(self) -> None:
        items: list[tuple[str, bytes]] = []
        while True:
            try:
                items.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        if not items:
            return
        commands: list[dict[str, Any]] = []
        acks: list[tuple[str, int]] = []
        with self.store.batch():  # all acks and notes of this round: one fsync
            for topic, data in items:
                try:
                    msg = self._handle(topic, data)
                    if msg is None:
                        continue
                    if msg["schema"] == "scribe.ack/1":
                        acks.append((msg["session_id"], msg["revision"]))
                    else:
                        commands.append(msg)
                except ProtocolError as exc:
                    log.warning("dropped message on %s: %s", topic, exc)
            if acks:
                for oid in self.store.mark_acked_many(acks, actor="sync"):
                    self._in_flight.pop(oid, None)
                self._last_ack_at = self.clock()
                self._wake.set()  # slots in the window are free
        for msg in commands:  # a purge checkpoints the WAL, which it cannot inside a transaction
            self._command(msg)

    def _handle(self, topic: str, data: bytes) -> dict[str, Any] | None:
        """Apply a note or the clinic's template list; return an accepted ack or a command for the
        caller to apply after the batch."""
        msg = protocol.decode(data, _INBOX_MAX_BYTES)
        kind = protocol.kind_of(msg)
        expected = {self.topics.ack: "ack", self.topics.note: "note", self.topics.command: "command",
                    self._templates_topic: "templates"}.get(topic)
        if kind != expected:
            raise ProtocolError(f"a {kind} message on {topic}")
        protocol.validate(kind, msg)
        if kind == "ack":
            if msg["status"] == "rejected":
                self._last_error = (f"clinic rejected session {msg['session_id']} revision {msg['revision']}: "
                                    f"{msg.get('error', '')}")
                log.error("%s", self._last_error)
                return None
            return msg
        if kind == "note":
            try:
                self.store.save_note(msg["session_id"], msg["revision"], msg["template"], msg["text"], actor="sync")
            except (SessionNotFound, SessionClosed, ValueError) as exc:
                log.warning("note for %s rev %d dropped: %s", msg["session_id"], msg["revision"], exc)
            return None
        if kind == "templates":
            try:
                save_announced(announced_path(self.cfg), msg)
                log.info("the clinic writes notes from templates: %s", ", ".join(msg["templates"]))
            except OSError as exc:
                log.warning("could not keep the clinic's template list: %s", exc)
            return None
        return msg

    def _command(self, msg: dict[str, Any]) -> None:
        sid, command = msg["session_id"], msg["command"]
        try:
            if command == "resend":
                self.store.enqueue(sid, actor="clinic")
                # Already queued and waiting out a backoff (or in flight, its ack lost): due now.
                for oid in self.store.retry_now(sid, self.clock()):
                    self._in_flight.pop(oid, None)
                self._wake.set()
            else:
                self.store.purge(sid, actor="clinic")
            log.info("clinic command %s for %s done", command, sid)
        except (SessionNotFound, IllegalTransition, SessionClosed) as exc:
            log.warning("clinic command %s for %s refused: %s", command, sid, exc)
