"""The device's sync component: delivers the outbox to the clinic and applies what comes back.

Durability lives in the store's outbox, not here: a session is 'synced' only when the clinic's
ack for that revision arrives, and every attempt is scheduled in the database first, so a crash,
a broker restart or a lost ack only ever leads to a resend, which the clinic dedupes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import paho.mqtt.client as mqtt

from appliance import __version__
from appliance.config.schema import ApplianceConfig
from appliance.daemon.alerts import Alerts
from appliance.store import IllegalTransition, OutboxItem, SessionClosed, SessionNotFound, SessionStore
from appliance.sync import protocol
from appliance.sync.announced import announced_path, save_announced
from appliance.sync.identity import mismatch, refusal_text
from appliance.sync.mqtt import PUBLISH_OVERHEAD, connect, make_client, max_packet_size
from appliance.sync.payload import build_payloads, model_info
from appliance.sync.protocol import PayloadRefused, ProtocolError, Topics

log = logging.getLogger(__name__)

_BATCH = 50  # outbox rows read and marked per transaction
_INBOX_MAX_BYTES = 1_000_000  # acks, notes and commands are small; anything bigger is dropped


class SyncService:
    def __init__(self, cfg: ApplianceConfig, store: SessionStore, *, clock: Callable[[], float] = time.time,
                 alerts: Alerts | None = None) -> None:
        self.cfg = cfg
        self.sc = cfg.sync
        self.store = store
        self.clock = clock
        self.topics = Topics(self.sc.topic_prefix, cfg.device.site, cfg.device.id)
        self._templates_topic = protocol.templates_topic(self.sc.topic_prefix)
        self.models = model_info(cfg)
        self.client: mqtt.Client | None = None
        self._inbox: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._connected = threading.Event()
        self._in_flight: dict[int, float] = {}  # outbox id → monotonic deadline of its ack
        self._last_ack_at: float | None = None
        self._last_error = ""
        self._status_sent_at = 0.0
        self.alerts = alerts
        if alerts is not None:
            alerts.add_listener(self._alerts_changed)
        self._message_limit = self.sc.chunk_bytes  # lowered to what the broker accepts (CONNACK)
        self._packet_problem = ""  # the broker's packet limit leaves no room for a transcript chunk
        self._refused = ""  # the broker refuses what this device publishes (ACL: id or site not its certificate's)

    # -- for the panel / status ----------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        # Connected but refused is not connected as far as delivery goes: nothing gets through.
        return {
            "enabled": True,
            "connected": self._connected.is_set() and not self._refused,
            "broker": f"{self.sc.broker_host}:{self.sc.broker_port}",
            "pending": self.store.pending_count(),
            "last_ack_at": self._last_ack_at,
            "last_error": self._last_error,
        }

    def _alerts_changed(self) -> None:
        self._status_sent_at = 0.0  # the clinic hears of a new (or cleared) alert now, not in 30 s
        self._wake.set()

    def wake(self) -> None:
        """Look at the outbox now (e.g. right after the clinician pressed Send)."""
        self._wake.set()

    # -- paho callbacks (network thread): only hand over, never touch the store here -----------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._last_error = f"broker refused the connection: {reason}"
            log.error("%s", self._last_error)
            return
        self._learn_packet_limit(max_packet_size(props))
        client.subscribe([(self.topics.ack, 1), (self.topics.note, 1), (self.topics.command, 1),
                          (self._templates_topic, 1)])
        self._in_flight.clear()  # unacked sends are due again at their scheduled time anyway
        self._connected.set()
        self._status_sent_at = 0.0
        log.info("connected to clinic broker %s:%d", self.sc.broker_host, self.sc.broker_port)
        self._wake.set()

    def _learn_packet_limit(self, broker_max: int | None) -> None:
        """Fit messages to the broker's packet limit from its CONNACK: a PUBLISH above it makes the
        broker drop the connection, and the same message would be sent again on every reconnect."""
        limit, self._packet_problem = self.sc.chunk_bytes, ""
        room = (broker_max - PUBLISH_OVERHEAD - len(self.topics.transcript.encode())) if broker_max else limit
        if room < protocol.MIN_CHUNK_MESSAGE_BYTES:
            self._packet_problem = (
                f"the clinic broker accepts packets of at most {broker_max} bytes (its max_packet_size), too small "
                f"for a transcript chunk: raise max_packet_size on the broker to "
                f"{protocol.MIN_CHUNK_MESSAGE_BYTES + PUBLISH_OVERHEAD + len(self.topics.transcript)} bytes "
                f"or more (shipped: 262144); nothing is sent until then")
            log.error("%s", self._packet_problem)
        elif room < limit:
            log.warning("[sync] chunk_bytes is %d but the clinic broker accepts packets of at most %d bytes: "
                        "sending transcripts in messages of at most %d bytes", limit, broker_max, room)
            limit = room
        self._message_limit = limit

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._last_error = f"the clinic broker closed the connection: {reason}"
            if reason.value == 0x95:  # Packet too large
                self._last_error += (f" (a message above its packet limit; [sync] chunk_bytes is "
                                     f"{self.sc.chunk_bytes})")
        if self._connected.is_set():
            log.warning("disconnected from clinic broker: %s", reason)
        self._connected.clear()

    def _on_publish(self, _c: mqtt.Client, _u: Any, _mid: int, reason: Any, _p: Any) -> None:
        # Every publish of this device goes to its own topics: a refusal means the broker does not
        # let this identity use them, and every message would be dropped the same way.
        if reason.is_failure:
            if not self._refused:
                self._refused = refusal_text(str(reason), self.topics, self.cfg.device, self.sc.cert_file)
                log.error("%s", self._refused)
            self._last_error = self._refused
        elif self._refused:
            log.info("the clinic broker accepts this device's messages again")
            self._refused = ""

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._inbox.put((msg.topic, bytes(msg.payload)))
        self._wake.set()

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
        sc = self.sc
        try:
            client = make_client(self.cfg.device.id, tls=sc.tls, ca_file=sc.ca_file, cert_file=sc.cert_file,
                                 key_file=sc.key_file, max_inflight=100,
                                 reconnect_max_s=sc.reconnect_max_s)
        except (OSError, ValueError) as exc:  # e.g. certificate not provisioned: shown, retried later
            self._last_error = str(exc)
            raise
        # Retained, so the clinic sees a device that vanished as offline, not as stale online.
        client.will_set(self.topics.status, self._status_message("offline"), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        self.client = client
        hint = mismatch(self.cfg.device, sc.cert_file) if sc.tls else ""
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
        connect(client, sc.broker_host, sc.broker_port, sc.keepalive_s)
        client.loop_start()
        try:
            while not stop.is_set():
                self._wake.clear()
                self._process_inbox()
                if self._connected.is_set():
                    self._publish_status()
                    self._send_due()
                self._wake.wait(sc.poll_interval_s)
        finally:
            if self._connected.is_set():
                client.publish(self.topics.status, self._status_message("offline"), qos=1, retain=True)
            client.disconnect()
            client.loop_stop()
            self._connected.clear()

    def _publish_status(self) -> None:
        now = time.monotonic()
        if self.client is not None and now - self._status_sent_at >= 30.0:
            self._status_sent_at = now
            self.client.publish(self.topics.status, self._status_message("online"), qos=1, retain=True)

    # -- sending ---------------------------------------------------------------------------------

    def _delay(self, attempts: int) -> float:
        return min(self.sc.ack_timeout_s * (2 ** min(attempts, 30)), self.sc.backoff_max_s)

    def _send_due(self) -> None:
        if self._packet_problem:
            self._last_error = self._packet_problem
            return
        now_mono = time.monotonic()
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
            outgoing = self._prepare(due, now)
            assert self.client is not None
            for item, messages in outgoing:
                self._in_flight[item.id] = time.monotonic() + self._delay(item.attempts)
                for data in messages:
                    self.client.publish(self.topics.transcript, data, qos=1)

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


class Sync(Protocol):
    """Transcript delivery as the panel sees it, on (SyncService) or off (DisabledSync)."""

    def status(self) -> dict[str, Any]: ...

    def wake(self) -> None: ...


class DisabledSync:
    """What the panel sees when sync is off in the config, or refused by its rules."""

    def __init__(self, store: SessionStore, config_error: str = "") -> None:
        self.store = store
        self.config_error = config_error  # why sync is off although the config enables it

    def status(self) -> dict[str, Any]:
        return {"enabled": False, "connected": False, "broker": "", "pending": self.store.pending_count(),
                "last_ack_at": None, "last_error": f"config: {self.config_error}" if self.config_error else ""}

    def wake(self) -> None:
        pass
