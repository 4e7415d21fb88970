"""The outbox pump without a broker: a second transport that keeps messages in memory (the test
plays the broker and the clinic, through the wire protocol), a real SQLite store and a hand-set
clock, one step() at a time. The same pump runs over Mosquitto in test_sync_delivery.py and
test_sync_faults.py."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from appliance.config import ApplianceConfig, parse_config
from appliance.daemon.alerts import Alerts
from appliance.store import SessionStore, State
from appliance.sync import pump as pump_module
from appliance.sync.announced import announced_path, load_announced
from appliance.sync.pump import OutboxPump, TransportListener
from common import protocol
from tests.broker import make_finished_sessions, wait_until
from tests.conftest import Clock
from tests.test_package_boundaries import imported_packages


class MemoryTransport:
    """A Transport (appliance.sync.pump) in memory: what the pump publishes is kept in a list."""

    peer = "memory:1"
    OVERHEAD = 20

    def __init__(self) -> None:
        self.listener: TransportListener | None = None
        self.subscriptions: tuple[str, ...] = ()
        self.will: tuple[str, bytes] | None = None
        self.published: list[tuple[str, bytes, bool]] = []
        self.refusal = ""  # set: the peer refuses every publish with this sentence
        self.closed = False

    def identity_problem(self) -> str:
        return ""

    def overhead(self, topic: str) -> int:
        return self.OVERHEAD + len(topic)

    def open(self, listener: TransportListener, subscriptions: Sequence[str], will: tuple[str, bytes]) -> None:
        self.listener, self.subscriptions, self.will = listener, tuple(subscriptions), will

    def publish(self, topic: str, data: bytes, *, retain: bool = False) -> None:
        assert self.listener is not None and not self.closed
        self.published.append((topic, data, retain))
        self.listener.delivery_refused(self.refusal)

    def close(self) -> None:
        self.closed = True

    # -- the broker's and the clinic's side, played by the test -------------------------------

    def up(self, max_packet: int | None = None) -> None:
        assert self.listener is not None
        self.listener.link_up(max_packet)

    def deliver(self, topic: str, message: dict[str, Any]) -> None:
        assert self.listener is not None
        self.listener.received(topic, protocol.encode(message))

    def take(self, topic: str) -> list[bytes]:
        """Messages published on `topic` since the last take."""
        mine = [data for t, data, _ in self.published if t == topic]
        self.published = [p for p in self.published if p[0] != topic]
        return mine


def transcripts(messages: list[bytes]) -> list[tuple[str, int]]:
    """(session, revision) of each complete transcript, chunked or not, validated as the clinic does."""
    done, parts = [], {}
    for data in messages:
        msg = protocol.decode(data, 1_000_000)
        if protocol.kind_of(msg) == "chunk":
            key = (msg["session_id"], msg["revision"])
            parts.setdefault(key, []).append(protocol.validate("chunk", msg))
            if len(parts[key]) < msg["count"]:
                continue
            msg = protocol.decode(protocol.join_chunks(parts.pop(key)), 100_000_000)
        protocol.validate("transcript", msg)
        done.append((msg["session_id"], msg["revision"]))
    assert not parts, "incomplete chunk sets"
    return done


def config(tmp_path: Path, **sync: object) -> ApplianceConfig:
    return parse_config({
        "device": {"id": "dev-a", "site": "site1", "room": "exam-3"},
        "sync": {"enabled": True, "tls": False, "ack_timeout_s": 10.0, "backoff_max_s": 60.0, **sync},
        "paths": {"state_dir": str(tmp_path / "state"), "models_dir": str(tmp_path / "models")},
        "asr": {"engine": "none"}, "vad": {"engine": "energy"}, "diarize": {"enabled": False},
    })


def make_pump(tmp_path: Path, store: SessionStore, clock: Clock, alerts: Alerts | None = None,
              **sync: object) -> tuple[OutboxPump, MemoryTransport]:
    link = MemoryTransport()
    pump = OutboxPump(config(tmp_path, **sync), store, link, clock=clock, monotonic=clock, alerts=alerts)
    pump.open()
    return pump, link


def ack(pump: OutboxPump, link: MemoryTransport, sid: str, revision: int = 1, status: str = "stored") -> None:
    link.deliver(pump.topics.ack, {"schema": "scribe.ack/1", "session_id": sid, "revision": revision,
                                   "status": status, **({"error": "bad"} if status == "rejected" else {})})


def test_the_pump_knows_no_transport() -> None:
    """MQTT lives in appliance/sync/transport.py only; a second transport would not copy the pump."""
    assert pump_module.__file__ is not None
    assert not imported_packages(Path(pump_module.__file__)) & {"paho", "ssl", "socket"}


def test_the_window_of_unacked_transcripts_and_the_acks(tmp_path: Path, store: SessionStore, clock: Clock) -> None:
    pump, link = make_pump(tmp_path, store, clock, max_in_flight=3)
    ids = make_finished_sessions(store, 5, segments=3)
    t = pump.topics
    assert link.subscriptions == (t.ack, t.note, t.command, protocol.templates_topic("scribe"))
    assert link.will is not None and link.will[0] == t.status
    assert protocol.decode(link.will[1], 10_000)["state"] == "offline"
    pump.step()
    assert link.published == [] and not pump.status()["connected"]  # no link yet: nothing sent
    link.up()
    pump.step()
    [status] = link.take(t.status)
    assert protocol.decode(status, 10_000)["state"] == "online" and protocol.decode(status, 10_000)["pending"] == 5
    first = transcripts(link.take(t.transcript))
    assert first == [(sid, 1) for sid in ids[:3]]  # the window: three awaiting their ack
    pump.step()
    assert link.take(t.transcript) == []
    ack(pump, link, ids[1])
    pump.step()
    assert transcripts(link.take(t.transcript)) == [(ids[3], 1)]  # the slot the ack freed
    assert store.get_session(ids[1]).state is State.SYNCED and store.get_session(ids[0]).state is State.QUEUED
    for sid in (ids[0], ids[2], ids[3]):
        ack(pump, link, sid)
    pump.step()
    assert transcripts(link.take(t.transcript)) == [(ids[4], 1)]
    ack(pump, link, ids[4])
    pump.step()
    assert all(store.get_session(sid).state is State.SYNCED for sid in ids)
    assert pump.status() == {"enabled": True, "connected": True, "broker": "memory:1", "pending": 0,
                             "last_ack_at": clock(), "last_error": ""}


def test_an_unacked_transcript_is_resent_on_its_backoff(tmp_path: Path, store: SessionStore, clock: Clock) -> None:
    pump, link = make_pump(tmp_path, store, clock, ack_timeout_s=10.0, backoff_max_s=30.0)
    [sid] = make_finished_sessions(store, 1, segments=3)
    link.up()
    sends = []
    for tick in [0.0, 9.0, 2.0, 15.0, 6.0, 29.0, 2.0]:  # waits of 10 s, then 20 s, then 30 s (the cap)
        clock.tick(tick)
        pump.step()
        sends.append(len(transcripts(link.take(pump.topics.transcript))))
    assert sends == [1, 0, 1, 0, 1, 0, 1]
    assert store.outbox_items(sid)[0].attempts == 4
    ack(pump, link, sid)
    pump.step()
    assert store.get_session(sid).state is State.SYNCED
    clock.tick(60.0)
    pump.step()
    assert link.take(pump.topics.transcript) == []  # acked: never again


def test_nothing_is_sent_while_the_link_is_down(tmp_path: Path, store: SessionStore, clock: Clock) -> None:
    pump, link = make_pump(tmp_path, store, clock)
    [a] = make_finished_sessions(store, 1, segments=3)
    link.up()
    pump.step()
    assert transcripts(link.take(pump.topics.transcript)) == [(a, 1)]
    assert link.listener is not None
    link.listener.link_down("the clinic broker closed the connection: Keep alive timeout")
    [b] = make_finished_sessions(store, 1, segments=3, name="Later")
    clock.tick(60.0)  # a's retry is due too
    pump.step()
    assert link.take(pump.topics.transcript) == []
    assert pump.status()["connected"] is False and "Keep alive timeout" in pump.status()["last_error"]
    link.up()
    pump.step()
    assert sorted(transcripts(link.take(pump.topics.transcript))) == sorted([(a, 1), (b, 1)])
    assert pump.status()["connected"] is True


def test_notes_commands_and_templates_from_the_clinic(tmp_path: Path, store: SessionStore, clock: Clock) -> None:
    pump, link = make_pump(tmp_path, store, clock, ack_timeout_s=100.0, backoff_max_s=300.0)
    done, waiting, erased = make_finished_sessions(store, 3, segments=3)
    link.up()
    pump.step()
    link.take(pump.topics.transcript)
    ack(pump, link, done)
    ack(pump, link, erased)
    link.deliver(pump.topics.note, {"schema": "scribe.note/1", "session_id": done, "revision": 1,
                                    "template": "SOAP", "text": "S: dry cough."})
    link.deliver(protocol.templates_topic("scribe"), {"schema": "scribe.templates/1",
                                                      "templates": ["SOAP", "Referral letter"], "ts": clock()})
    link.deliver(pump.topics.note, {"schema": "scribe.ack/1", "session_id": waiting, "revision": 1,
                                    "status": "stored"})  # an ack on the note topic: dropped
    pump.step()
    assert store.read_notes(done, "test", "check")[0].text == "S: dry cough."
    assert load_announced(announced_path(pump.cfg)) == ["SOAP", "Referral letter"]
    assert store.get_session(waiting).state is State.QUEUED
    # The clinic lost `waiting`: resend now, not after its 100 s backoff; and it is done with `erased`.
    link.deliver(pump.topics.command, {"schema": "scribe.command/1", "command": "resend", "session_id": waiting})
    link.deliver(pump.topics.command, {"schema": "scribe.command/1", "command": "purge", "session_id": erased})
    pump.step()
    assert store.get_session(erased).state is State.PURGED
    pump.step()
    assert transcripts(link.take(pump.topics.transcript)) == [(waiting, 1)]
    ack(pump, link, waiting, status="rejected")
    pump.step()
    assert store.get_session(waiting).state is State.QUEUED
    assert pump.status()["last_error"] == f"clinic rejected session {waiting} revision 1: bad"


def test_messages_fit_the_peers_packet_limit(tmp_path: Path, store: SessionStore, clock: Clock) -> None:
    pump, link = make_pump(tmp_path, store, clock)  # chunk_bytes: the default 128 KiB
    [sid] = make_finished_sessions(store, 1, segments=120)
    link.up(max_packet=4096)
    pump.step()
    sent = link.take(pump.topics.transcript)
    assert len(sent) >= 4 and max(map(len, sent)) <= 4096 - link.overhead(pump.topics.transcript)
    assert transcripts(sent) == [(sid, 1)]
    link.up(max_packet=600)  # reconnected to a broker that takes less than a chunk's envelope
    clock.tick(60.0)
    pump.step()
    assert link.take(pump.topics.transcript) == []
    error = pump.status()["last_error"]
    assert "at most 600 bytes" in error and "raise max_packet_size on the broker" in error, error


def test_a_peer_that_refuses_the_device_is_not_connected(tmp_path: Path, store: SessionStore, clock: Clock) -> None:
    pump, link = make_pump(tmp_path, store, clock)
    link.refusal = "the clinic broker refuses every message this device sends"
    link.up()
    pump.step()  # the status beat is refused
    assert pump.status()["connected"] is False and pump.status()["last_error"] == link.refusal
    link.refusal = ""
    make_finished_sessions(store, 1, segments=3)
    pump.step()
    assert pump.status()["connected"] is True


def test_an_alert_is_reported_at_once(tmp_path: Path, store: SessionStore, clock: Clock) -> None:
    alerts = Alerts(clock)
    pump, link = make_pump(tmp_path, store, clock, alerts=alerts)
    link.up()
    pump.step()
    assert len(link.take(pump.topics.status)) == 1
    clock.tick(5.0)
    pump.step()
    assert link.take(pump.topics.status) == []  # the beat is every 30 s
    alerts.raise_alert("storage", "Storage full")
    pump.step()
    [status] = link.take(pump.topics.status)
    assert [a["key"] for a in protocol.decode(status, 10_000)["alerts"]] == ["storage"]


def test_run_says_offline_and_closes_on_stop(tmp_path: Path, store: SessionStore, clock: Clock) -> None:
    link = MemoryTransport()
    pump = OutboxPump(config(tmp_path, poll_interval_s=0.05), store, link, clock=clock, monotonic=clock)
    stop = threading.Event()
    thread = threading.Thread(target=pump.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: link.listener is not None, 5, "transport opened")
        link.up()
        wait_until(lambda: any(t == pump.topics.status for t, _, _ in link.published), 5, "online status")
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive() and link.closed
    topic, data, retain = link.published[-1]
    assert (topic, retain) == (pump.topics.status, True) and protocol.decode(data, 10_000)["state"] == "offline"
