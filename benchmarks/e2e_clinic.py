"""A clinic under load: many rooms against one real Mosquitto and one clinic server (notes on).

Every room is a light client speaking the device's protocol with the device's own MQTT set-up
(common/mqtt.py: MQTT 5, TLS, persistent session) and its own certificate from
scripts/pki (the broker's ACL, from make-acl.sh, confines each to its topics). A room publishes
finished visits (scribe.transcript/1, built from a real session store by the device's payload
code) and sends again what is not acknowledged within --ack-timeout-s (the device does the same,
backing off up to sync.backoff_max_s).

Phase 1, steady: each room sends --visits visits, one every --interval-s (compressed time: a
real room finishes a visit every 15-20 minutes), starts spread over one interval.
Phase 2, burst: the clinic server stops; every room finishes --burst-visits more visits;
after --outage-s every room drops its connection and reconnects at once, then the clinic server
starts again and works through the backlog: the rooms' resends (the clinic subscribes to
transcripts at QoS 0, so none wait at the broker while it is down).

Printed: transcripts/s stored, ack latency p50/p95 (first send → ack), notes/s (notes received
by the rooms), the clinic server's CPU share and peak RSS per phase, and zero loss with
exactly-once checked field by field against the store. The clinic store's backend is a parameter.

    .venv/bin/python -m benchmarks.e2e_clinic [--rooms 200] [--backend sqlite|postgresql] [--store KEY=VALUE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from appliance.demo import stack
from appliance.store import open_store
from appliance.sync.payload import build_payload
from benchmarks.e2e import cpu_seconds, pct, peak_rss_mb
from clinic.config import load_clinic_config
from clinic.store import open_repository
from common import mqtt as device_mqtt
from common import protocol
from tests.broker import Broker, make_finished_sessions, make_pki, wait_until

SITE = "site1"


@dataclass
class Room:
    name: str
    topics: protocol.Topics
    visits: list[dict[str, Any]]  # payloads still to send, in order
    client: Any = None
    pending: dict[tuple[str, int], list[float]] = field(default_factory=dict)  # key → [first send, last send]
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Totals:
    acks: list[tuple[float, float]] = field(default_factory=list)  # (ack time, latency)
    notes: dict[tuple[str, str], float] = field(default_factory=dict)  # (session, template) → first arrival
    resends: int = 0
    duplicate_acks: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Rooms:
    def __init__(self, rooms: list[Room], pki: Path, port: int, ack_timeout_s: float) -> None:
        self.rooms, self.pki, self.port, self.ack_timeout_s = rooms, pki, port, ack_timeout_s
        self.totals = Totals()
        self.sent: dict[tuple[str, int], dict[str, Any]] = {}
        self._stop = threading.Event()
        self._resender = threading.Thread(target=self._resend_loop, daemon=True)

    def connect(self) -> None:
        for room in self.rooms:
            room.client = device_mqtt.make_client(room.name, tls=True, ca_file=str(self.pki / "ca.crt"),
                                                  cert_file=str(self.pki / f"{room.name}.crt"),
                                                  key_file=str(self.pki / f"{room.name}.key"))
            room.client.on_connect = lambda c, _u, _f, rc, _p, room=room: rc.is_failure or c.subscribe(
                [(room.topics.ack, 1), (room.topics.note, 1)])
            room.client.on_message = lambda _c, _u, m, room=room: self._on_message(room, m.topic, m.payload)
            device_mqtt.connect(room.client, "localhost", self.port, 30)
            room.client.loop_start()
        wait_until(lambda: all(r.client.is_connected() for r in self.rooms), 120, "every room connected")
        time.sleep(1.0)  # subscriptions in place
        self._resender.start()

    def reconnect_all(self) -> None:
        """Every room drops its connection and comes back at once (its session persists)."""
        for room in self.rooms:
            room.client.disconnect()
            room.client.loop_stop()
        for room in self.rooms:
            device_mqtt.connect(room.client, "localhost", self.port, 30)
            room.client.loop_start()
        wait_until(lambda: all(r.client.is_connected() for r in self.rooms), 120, "every room reconnected")

    def close(self) -> None:
        self._stop.set()
        for room in self.rooms:
            if room.client is not None:
                room.client.disconnect()
                room.client.loop_stop()

    def send_next(self, room: Room) -> None:
        payload = room.visits.pop(0)
        key = (payload["session_id"], payload["revision"])
        self.sent[key] = payload
        now = time.monotonic()
        with room.lock:
            room.pending[key] = [now, now]
        room.client.publish(room.topics.transcript, protocol.encode(payload), qos=1)

    def _resend_loop(self) -> None:
        while not self._stop.wait(1.0):
            now = time.monotonic()
            for room in self.rooms:
                with room.lock:
                    due = [k for k, (_, last) in room.pending.items() if now - last > self.ack_timeout_s]
                    for key in due:
                        room.pending[key][1] = now
                for key in due:
                    room.client.publish(room.topics.transcript, protocol.encode(self.sent[key]), qos=1)
                    with self.totals.lock:
                        self.totals.resends += 1

    def _on_message(self, room: Room, topic: str, data: bytes) -> None:
        now = time.monotonic()
        msg = json.loads(data)
        with self.totals.lock:
            if topic == room.topics.note:
                self.totals.notes.setdefault((msg["session_id"], msg["template"]), now)
                return
            with room.lock:
                first = room.pending.pop((msg["session_id"], msg["revision"]), None)
            if first is None:
                self.totals.duplicate_acks += 1
            else:
                self.totals.acks.append((now, now - first[0]))

    def unacked(self) -> int:
        return sum(len(r.pending) for r in self.rooms)


def build_rooms(pki: Path, n: int, per_room: int, segments: int, work: Path) -> list[Room]:
    store = open_store(str(work / "rooms.db"))
    rooms = []
    for i in range(n):
        name = f"room-{i:03d}"
        stack.issue_device(pki, name, SITE)
        ids = make_finished_sessions(store, per_room, segments, device_id=name, site=SITE, enqueue=False, bulk=True,
                                     name=name)
        rooms.append(Room(name, protocol.Topics("scribe", SITE, name),
                          [build_payload(store, sid, 1, []) for sid in ids]))
    store.close()
    return rooms


def clinic_cfg_text(pki: Path, port: int, work: Path, backend: str, extra: list[str]) -> str:
    store: dict[str, str] = {"backend": backend, "path": str(work / "clinic" / "transcripts.db")}
    for item in extra:
        key, _, value = item.partition("=")
        store[key.strip()] = value.strip()
    text = stack.clinic_toml(pki, port, Path(store["path"]))
    head, _, tail = text.partition("[store]\n")
    rest = tail.split("\n", 1)[1]  # drop the path line clinic_toml wrote
    return head + "[store]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in store.items()) + rest


def phase_report(name: str, t0: float, totals: Totals, acks_before: int, notes_before: int, clinic: stack.Child,
                 cpu0: float, wall0: float, *, from_t0: bool = False) -> None:
    """`from_t0`: ack latency counted from t0 (the clinic's restart) rather than from the first send."""
    acks = totals.acks[acks_before:]
    notes = sorted(totals.notes.values())[notes_before:]
    span = max(t for t, _ in acks) - t0
    note_span = (max(notes) - t0) if notes else float("nan")
    assert clinic.pid is not None
    cpu = cpu_seconds(clinic.pid) - cpu0
    lat = [t - t0 for t, _ in acks] if from_t0 else [x for _, x in acks]
    print(f"{name:<7} {len(acks):>6} stored in {span:6.1f} s = {len(acks) / span:6.1f} transcripts/s; ack "
          f"{'after the restart' if from_t0 else 'latency'} "
          f"p50 {pct(lat, 50):.2f} s p95 {pct(lat, 95):.2f} s; {len(notes)} notes = {len(notes) / note_span:.1f} "
          f"notes/s; clinic CPU {100 * cpu / (time.monotonic() - wall0):.0f} %, peak RSS "
          f"{peak_rss_mb(clinic.pid):.0f} MB")
    if from_t0:
        first, last = min(t for t, _ in acks), max(t for t, _ in acks)
        print(f"        first ack {first - t0:.1f} s after the restart (start-up, reconnect), then "
              f"{(len(acks) - 1) / max(last - first, 1e-3):.1f} transcripts/s")


def verify(cfg_path: Path, sent: dict[tuple[str, int], dict[str, Any]], totals: Totals) -> None:
    """Zero loss and exactly once, field by field; a note for every visit reached its room."""
    cfg = load_clinic_config(str(cfg_path))
    repo = open_repository(cfg.store)
    try:
        stored = [(r.session_id, r.revision) for r in repo.list()]
        assert len(stored) == len(set(stored)), "a transcript is stored twice"
        lost, extra = set(sent) - set(stored), set(stored) - set(sent)
        assert not lost and not extra, f"lost: {len(lost)}, unexpected: {len(extra)}"
        for (sid, rev), payload in sent.items():
            got = repo.get(sid, rev, actor="bench", reason="exactly-once check")
            assert got is not None
            diff = [k for k in payload if got.get(k) != payload[k]]
            assert not diff, f"{sid}: fields differ at the clinic: {diff}"
        missing = {sid for sid, _ in sent} - {sid for sid, _ in totals.notes}
        assert not missing, f"{len(missing)} visits got no note back"
    finally:
        repo.close()
    print(f"zero loss, exactly once: {len(stored)} transcripts stored once each and equal field by field; "
          f"{totals.resends} resends and {totals.duplicate_acks} duplicate acks along the way; every visit's note "
          "reached its room")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rooms", type=int, default=200)
    ap.add_argument("--visits", type=int, default=3, help="visits per room in the steady phase")
    ap.add_argument("--burst-visits", type=int, default=1, help="visits per room finished during the outage")
    ap.add_argument("--segments", type=int, default=60, help="utterances per visit (60 ≈ a 15-minute visit)")
    ap.add_argument("--interval-s", type=float, default=10.0, help="time between a room's visits (steady phase)")
    ap.add_argument("--outage-s", type=float, default=20.0, help="how long the clinic server is down")
    ap.add_argument("--ack-timeout-s", type=float, default=10.0, help="a room sends again after this long")
    ap.add_argument("--backend", default="sqlite", choices=("sqlite", "postgresql"),
                    help="clinic store backend ([store] backend)")
    ap.add_argument("--store", action="append", default=[], metavar="KEY=VALUE",
                    help="more [store] keys of the clinic config, e.g. url=postgresql://… (postgresql without "
                         "a url: a throwaway local PostgreSQL server, as the tests use)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-clinic-") as tmpdir, contextlib.ExitStack() as cleanup:
        work = Path(tmpdir)
        if args.backend == "postgresql" and not any(s.startswith("url=") for s in args.store):
            from tests.postgres import PostgresServer

            server = PostgresServer().start()
            cleanup.callback(server.stop)
            args.store.append(f"url={server.create_database()}")
        pki = make_pki(work / "pki", devices=())
        t = time.monotonic()
        rooms = build_rooms(pki.dir, args.rooms, args.visits + args.burst_visits, args.segments, work)
        size = np.mean([len(protocol.encode(r.visits[0])) for r in rooms])
        print(f"{args.rooms} rooms (a certificate each), {args.visits + args.burst_visits} visits each of "
              f"{args.segments} utterances ({size / 1000:.0f} kB), made in {time.monotonic() - t:.0f} s; "
              f"clinic store: {args.backend}")
        broker = Broker(pki, work / "broker").start()
        (work / "clinic").mkdir()
        cfg = work / "clinic" / "clinic.toml"
        cfg.write_text(clinic_cfg_text(pki.dir, broker.port, work, args.backend, args.store))
        clinic = stack.clinic(cfg, work / "clinic" / "clinic.log").start()
        fleet = Rooms(rooms, pki.dir, broker.port, args.ack_timeout_s)
        try:
            clinic.wait_ready(lambda: "connected" in clinic.log.read_text(), 30, "connected to the broker")
            fleet.connect()
            steady(fleet, args, clinic)
            burst(fleet, args, clinic)
            verify(cfg, fleet.sent, fleet.totals)
        finally:
            fleet.close()
            clinic.stop()
            broker.stop()


def steady(fleet: Rooms, args: argparse.Namespace, clinic: stack.Child) -> None:
    assert clinic.pid is not None
    rng = np.random.default_rng(1)
    schedule = sorted((float(rng.uniform(0, args.interval_s)) + k * args.interval_s, i)
                      for i in range(len(fleet.rooms)) for k in range(args.visits))
    cpu0, t0 = cpu_seconds(clinic.pid), time.monotonic()
    for when, i in schedule:
        time.sleep(max(0.0, t0 + when - time.monotonic()))
        fleet.send_next(fleet.rooms[i])
    wait_until(lambda: fleet.unacked() == 0, 600, "every steady visit acknowledged", interval=0.1)
    n = len(schedule)
    wait_until(lambda: len(fleet.totals.notes) >= n, 600, "every steady visit's note back", interval=0.1)
    phase_report("steady", t0, fleet.totals, 0, 0, clinic, cpu0, t0)


def burst(fleet: Rooms, args: argparse.Namespace, clinic: stack.Child) -> None:
    acks_before, notes_before = len(fleet.totals.acks), len(fleet.totals.notes)
    clinic.stop()
    for _ in range(args.burst_visits):
        for room in fleet.rooms:
            fleet.send_next(room)
    time.sleep(args.outage_s)  # resends pile up at the broker for the clinic's session
    fleet.reconnect_all()
    t0 = time.monotonic()
    clinic.start()
    assert clinic.pid is not None
    cpu0 = cpu_seconds(clinic.pid)
    wait_until(lambda: fleet.unacked() == 0, 900, "every burst visit acknowledged", interval=0.1)
    total = len(fleet.sent)
    wait_until(lambda: len(fleet.totals.notes) >= total, 900, "every burst visit's note back", interval=0.1)
    # the first sends were during the outage: count the acks' wait from the clinic's restart
    phase_report("burst", t0, fleet.totals, acks_before, notes_before, clinic, cpu0, t0, from_t0=True)


if __name__ == "__main__":
    main()
