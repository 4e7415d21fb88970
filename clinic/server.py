"""`clinic run`: subscribe to every device's transcripts and status, store, acknowledge; announce
the note templates this clinic writes (retained, for every device).

Messages are handed from paho's network thread to one worker thread, which stores a batch in one
transaction and only then publishes the acks: an ack always means "on disk at the clinic". The
broker holds no transcript for the server while it is away (QoS 0 subscription): the devices'
outboxes are the only durable copies until the clinic's ack.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from clinic.config import ClinicConfig
from clinic.ingest import Ingest
from clinic.notes.service import NoteService
from clinic.notes.templates import TemplateRegistry
from clinic.store import TranscriptStore, open_repository
from common import protocol
from common.mqtt import connect, make_client
from common.protocol import Topics

log = logging.getLogger(__name__)


class ClinicServer:
    def __init__(self, cfg: ClinicConfig, repo: TranscriptStore | None = None) -> None:
        self.cfg = cfg
        self.repo = repo or open_repository(cfg.store)
        self.notes: NoteService | None = None
        self._caught_up = False
        self.templates: TemplateRegistry | None = None
        if cfg.notes.enabled:
            self.templates = TemplateRegistry(cfg.notes.templates_dir)
            self.notes = NoteService(self.repo, self.templates, self._publish_note,
                                     cfg.notes.workers, cfg.notes.fallback_template, cfg.notes.generator,
                                     cfg.llm)
        self.ingest = Ingest(cfg.mqtt.topic_prefix, self.repo, cfg.ingest,
                             on_stored=self.notes.on_stored if self.notes else None)
        self.connected = threading.Event()
        self._queue: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        m = cfg.mqtt
        self.client = make_client(m.client_id, tls=m.tls, ca_file=m.ca_file, cert_file=m.cert_file,
                                  key_file=m.key_file, max_inflight=1000)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self._subscribe_mid: int | None = None

    # -- paho callbacks (network thread) ------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        prefix = self.cfg.mqtt.topic_prefix
        # Transcripts at QoS 0: the broker never queues one for an absent server, so none is ever
        # written to its persistence file (mosquitto.db) in clear. Nothing is lost: the device's
        # outbox is the durable copy and resends every transcript not acked (sync.ack_timeout_s).
        _rc, self._subscribe_mid = client.subscribe([(f"{prefix}/+/+/transcript", 0), (f"{prefix}/+/+/status", 1)])
        if self.templates is not None:
            # Retained: a device that connects later (or restarts) gets the list at once.
            topic, data = templates_message(prefix, self.templates.names(), time.time())
            client.publish(topic, data, qos=1, retain=True)
        log.info("connected to %s:%d", self.cfg.mqtt.host, self.cfg.mqtt.port)
        if self.notes is not None and not self._caught_up:
            self._caught_up = True  # once per start: later reconnects find nothing new to catch up
            self.notes.catch_up(self.cfg.notes.catch_up_hours)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, mid: int, _codes: Any, _p: Any) -> None:
        # Ready only once the broker has the subscription: a QoS 0 transcript published before
        # that would not be delivered (the device would resend it, but only after ack_timeout_s).
        if mid == self._subscribe_mid:
            self.connected.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("disconnected from broker (%s); reconnecting", reason)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._queue.put((msg.topic, bytes(msg.payload)))

    # -- worker --------------------------------------------------------------------------------

    def _work(self) -> None:
        batch_max = self.cfg.ingest.batch_max
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            batch = [first]
            while len(batch) < batch_max:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                outgoing = self.ingest.handle_batch(batch)
            except Exception:
                # E.g. the disk is full: nothing is acked, so the devices resend later. Once per
                # interval with its traceback, then counted: the failure repeats for every batch.
                self.ingest.warn.warning("(clinic store)", "could not store a batch of %d messages", len(batch),
                                         exc_info=True)
                continue
            for topic, message in outgoing:
                self.client.publish(topic, protocol.encode(message), qos=1)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> ClinicServer:
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="clinic-ingest", daemon=True)
        self._worker.start()
        connect(self.client, self.cfg.mqtt.host, self.cfg.mqtt.port, self.cfg.mqtt.keepalive_s)
        self.client.loop_start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.join(5)
        if self.notes is not None:
            self.notes.close()  # queued notes are written and handed to paho before it disconnects
        self.client.disconnect()
        self.client.loop_stop()

    def run(self, stop: threading.Event) -> None:
        """Serve until `stop` is set (the CLI sets it on SIGTERM/SIGINT)."""
        self.start()
        try:
            stop.wait()
        finally:
            self.stop()
            log.info("clinic server stopped: %s", self.ingest.stats)

    # -- clinic → device -----------------------------------------------------------------------

    def send_note(self, site: str, device_id: str, session_id: str, revision: int, template: str,
                  text: str, **extra: Any) -> mqtt.MQTTMessageInfo:
        """`extra`: the optional note fields (status, generator, evidence) of note.v1.json."""
        topic, data = note_message(self.cfg.mqtt.topic_prefix, site, device_id, session_id, revision, template, text,
                                   **extra)
        return self.client.publish(topic, data, qos=1)

    def _publish_note(self, site: str, device_id: str, message: dict[str, Any]) -> None:
        fields = {k: v for k, v in message.items() if k != "schema"}
        self.send_note(site, device_id, **fields)

    def send_command(self, site: str, device_id: str, command: str, session_id: str) -> mqtt.MQTTMessageInfo:
        topic, data = command_message(self.cfg.mqtt.topic_prefix, site, device_id, command, session_id)
        return self.client.publish(topic, data, qos=1)


def note_message(prefix: str, site: str, device_id: str, session_id: str, revision: int, template: str,
                 text: str, **extra: Any) -> tuple[str, bytes]:
    """(topic, validated scribe.note/1 bytes) of a note for a device; `extra`: optional fields."""
    note = protocol.validate("note", {"schema": "scribe.note/1", "session_id": session_id,
                                      "revision": revision, "template": template, "text": text, **extra})
    return Topics(prefix, site, device_id).note, protocol.encode(note)


def templates_message(prefix: str, names: list[str], ts: float) -> tuple[str, bytes]:
    """(topic, validated scribe.templates/1 bytes): the note templates this clinic writes."""
    msg = protocol.validate("templates", {"schema": "scribe.templates/1", "templates": names, "ts": ts})
    return protocol.templates_topic(prefix), protocol.encode(msg)


def command_message(prefix: str, site: str, device_id: str, command: str, session_id: str) -> tuple[str, bytes]:
    """(topic, validated scribe.command/1 bytes) of a command for a device."""
    cmd = protocol.validate("command", {"schema": "scribe.command/1", "command": command, "session_id": session_id})
    return Topics(prefix, site, device_id).command, protocol.encode(cmd)
