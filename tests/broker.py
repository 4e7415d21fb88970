"""A real Mosquitto for the sync tests: the shipped config and ACL, certificates from the shipped
PKI scripts, on loopback at a free port, in a temp dir. Stop/start/kill to inject faults."""

from __future__ import annotations

import contextlib
import queue
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import paho.mqtt.client as mqtt

if TYPE_CHECKING:
    from appliance.config.schema import ApplianceConfig
    from appliance.store import SessionStore
    from appliance.sync.service import SyncService
    from clinic.config import ClinicConfig
    from clinic.server import ClinicServer
    from clinic.store import TranscriptStore
    from tests.postgres import ClinicStoreTarget

REPO = Path(__file__).resolve().parents[1]
PKI = REPO / "scripts" / "pki"
CONF = REPO / "image" / "mosquitto" / "mosquitto.conf"
CLINIC_ID = "clinic-server"
TOOLS_ID = "clinic-tools"  # the certificate of `clinic note` / `clinic command`


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Pki:
    dir: Path

    @property
    def ca(self) -> Path:
        return self.dir / "ca.crt"

    def cert(self, name: str) -> Path:
        return self.dir / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.key"

    def issue(self, kind: str, name: str, site: str = "site1") -> None:
        """A certificate from scripts/pki/make-cert.sh (a device's for `site`)."""
        if not self.cert(name).exists():
            subprocess.run([str(PKI / "make-cert.sh"), str(self.dir), str(self.dir), kind, name,
                            *([site] if kind == "device" else [])], check=True, capture_output=True)

    def acl(self) -> str:
        """The broker ACL scripts/pki/make-acl.sh writes for the devices issued so far."""
        return subprocess.run([str(PKI / "make-acl.sh"), str(self.dir)], check=True, capture_output=True,
                              text=True).stdout

    def revoke(self, name: str) -> str:
        """scripts/pki/revoke.sh on `name`'s certificate: the CA's CRL now lists it."""
        return subprocess.run([str(PKI / "revoke.sh"), str(self.dir), str(self.cert(name))],
                              check=True, capture_output=True, text=True).stdout


def make_pki(root: Path, devices: tuple[str, ...] = ("dev-a", "dev-b")) -> Pki:
    """CA, broker server certificate (localhost / 127.0.0.1), clinic and device client certificates."""
    subprocess.run([str(PKI / "make-ca.sh"), str(root)], check=True, capture_output=True)
    subprocess.run([str(PKI / "make-cert.sh"), str(root), str(root), "server", "localhost", "127.0.0.1"],
                   check=True, capture_output=True)
    pki = Pki(root)
    pki.issue("clinic", CLINIC_ID)
    pki.issue("clinic", TOOLS_ID)
    for dev in devices:
        pki.issue("device", dev)
    return pki


def render_conf(pki: Pki, port: int, data_dir: Path, max_packet: int | None = None) -> str:
    """The shipped mosquitto.conf with its paths and port pointed at the test's files."""
    from appliance.demo.stack import mosquitto_conf

    return mosquitto_conf(pki.dir, port, data_dir, acl=data_dir / "scribe.acl", max_packet=max_packet)


class Broker:
    def __init__(self, pki: Pki, workdir: Path, port: int | None = None, max_packet: int | None = None) -> None:
        self.pki = pki
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(render_conf(pki, self.port, self.dir, max_packet))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> str:
        path = self.dir / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, timeout: float = 10.0) -> Broker:
        if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
            raise RuntimeError("mosquitto is not installed (make setup installs it)")
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        (self.dir / "scribe.acl").write_text(self.pki.acl())  # as installed: the devices issued until now
        with open(self.dir / "stderr.log", "ab") as err:
            self.proc = subprocess.Popen([exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited {self.proc.returncode}: "
                                   f"{(self.dir / 'stderr.log').read_text()}\n{self.log}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return self
            time.sleep(0.05)
        raise TimeoutError(f"mosquitto did not listen on {self.port}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def clinic_config(pki: Pki, broker: Broker, db: Path | ClinicStoreTarget, notes: bool = False,
                  **ingest: object) -> ClinicConfig:
    """`db`: a SQLite file, or the test's clinic store (either backend). `notes`: write and send
    notes after ingest (off by default: the sync tests send their own)."""
    from clinic.config import ClinicConfig, IngestConfig, MqttConfig, NotesConfig, StoreConfig

    return ClinicConfig(
        mqtt=MqttConfig(host="localhost", port=broker.port, ca_file=str(pki.ca), cert_file=str(pki.cert(CLINIC_ID)),
                        key_file=str(pki.key(CLINIC_ID)), client_id=f"{CLINIC_ID}-{broker.port}",
                        tool_cert_file=str(pki.cert(TOOLS_ID)), tool_key_file=str(pki.key(TOOLS_ID))),
        store=StoreConfig(path=str(db)) if isinstance(db, Path) else db.config(),
        ingest=IngestConfig(**ingest),  # type: ignore[arg-type]
        notes=NotesConfig(enabled=notes),
    )


@contextlib.contextmanager
def running_clinic(pki: Pki, broker: Broker, db: Path | ClinicStoreTarget, notes: bool = False,
                   **ingest: object) -> Iterator[ClinicServer]:
    """A clinic server on `broker` (clinic_config's arguments), stopped on the way out even when the
    test fails. It does not wait for the connection: a test that needs it waits on `.connected`."""
    from clinic.server import ClinicServer

    server = ClinicServer(clinic_config(pki, broker, db, notes, **ingest)).start()
    try:
        yield server
    finally:
        server.stop()


def clinic_toml(pki: Pki, broker: Broker, db: Path) -> str:
    """clinic_config() as the clinic.toml file `clinic --config` reads."""
    import dataclasses
    import json

    cfg = clinic_config(pki, broker, db)
    return "".join(f"[{table}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in dataclasses.asdict(
        getattr(cfg, table)).items()) for table in ("mqtt", "store"))


def sync_toml(pki: Pki, broker: Broker, device_id: str, site: str = "site1", **sync: object) -> str:
    """The [device] and [sync] tables of a device that talks to `broker`."""
    keys = {"enabled": True, "broker_host": "localhost", "broker_port": broker.port, "ca_file": str(pki.ca),
            "cert_file": str(pki.cert(device_id)), "key_file": str(pki.key(device_id)),
            "ack_timeout_s": 2.0, "backoff_max_s": 5.0, "poll_interval_s": 0.1, **sync}

    def val(v: object) -> str:
        return str(v).lower() if isinstance(v, bool) else (f'"{v}"' if isinstance(v, str) else str(v))

    lines = [f'[device]\nid = "{device_id}"\nsite = "{site}"\nroom = "exam-3"',
             "[sync]", *(f"{k} = {val(v)}" for k, v in keys.items())]
    return "\n".join(lines) + "\n"


def device_toml(pki: Pki, broker: Broker, device_id: str, state_dir: Path, **sync: object) -> str:
    """sync_toml() plus [paths] in `state_dir`."""
    return (sync_toml(pki, broker, device_id, **sync)
            + f'[paths]\nstate_dir = "{state_dir}"\nmodels_dir = "{state_dir / "models"}"\n')


def device_config(pki: Pki, broker: Broker, device_id: str, state_dir: Path, **sync: object) -> ApplianceConfig:
    import tomllib

    from appliance.config.loader import parse_config

    return parse_config(tomllib.loads(device_toml(pki, broker, device_id, state_dir, **sync)
                                      + '[asr]\nengine = "none"\n[vad]\nengine = "energy"\n'
                                      + "[diarize]\nenabled = false\n"))


# -- clients: a device's sync in a thread, a bare paho client with any certificate and client id ---


class Device:
    """A device's store + sync component running in a thread."""

    def __init__(self, pki: Pki, broker: Broker, state: Path, device_id: str = "dev-a", *, cert: str | None = None,
                 site: str = "site1", **sync: object) -> None:
        """`cert`: the certificate to present (default: the one issued for `device_id`)."""
        from appliance.store import open_store
        from appliance.sync.service import SyncService

        if cert is not None:
            sync = {"cert_file": str(pki.cert(cert)), "key_file": str(pki.key(cert)), **sync}
        self.cfg = device_config(pki, broker, device_id, state, site=site, **sync)
        self.store: SessionStore = open_store(self.cfg.store_path)
        self.sync: SyncService = SyncService(self.cfg, self.store)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.sync.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> Device:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        self.store.close()

    def synced(self, ids: list[str]) -> bool:
        from appliance.store import State

        return all(self.store.get_session(i).state is State.SYNCED for i in ids)


class Raw:
    """A plain paho client (MQTT 3.1.1, clean session) with `name`'s certificate (None: none at all),
    connected at construction; `client_id` is the one it asks for (default: a unique one)."""

    def __init__(self, broker: Broker, pki: Pki, name: str | None, cert_dir: Path | None = None,
                 client_id: str | None = None) -> None:
        self.received: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        self.disconnects = 0
        self.rc: mqtt.ReasonCode | None = None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"raw-{name}-{time.monotonic_ns()}")
        certs = cert_dir or pki.dir
        self.client.tls_set(ca_certs=str(pki.ca), certfile=str(certs / f"{name}.crt") if name else None,
                            keyfile=str(certs / f"{name}.key") if name else None,
                            tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = lambda _c, _u, m: self.received.put((m.topic, bytes(m.payload)))
        self.client.connect("localhost", broker.port, keepalive=10)  # raises if the TLS handshake fails
        self.client.loop_start()
        wait_until(lambda: self.rc is not None or self.disconnects, 10, "CONNACK or disconnect")

    def _on_connect(self, _c: mqtt.Client, _u: object, _f: object, rc: mqtt.ReasonCode, _p: object) -> None:
        self.rc = rc

    def _on_disconnect(self, *_a: object) -> None:
        self.disconnects += 1

    @property
    def accepted(self) -> bool:
        return self.rc is not None and not self.rc.is_failure and self.client.is_connected()

    def publish(self, topic: str, data: bytes) -> None:
        self.client.publish(topic, data, qos=1).wait_for_publish(5)

    def drain(self) -> list[tuple[str, bytes]]:
        out = []
        while not self.received.empty():
            out.append(self.received.get())
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def refused(broker: Broker, pki: Pki, name: str | None, cert_dir: Path | None = None) -> bool:
    try:
        raw = Raw(broker, pki, name, cert_dir)
    except (ssl.SSLError, OSError, TimeoutError):
        return True
    try:
        time.sleep(0.3)
        return not raw.accepted
    finally:
        raw.close()


# -- sessions on the device and the field-by-field comparison with the clinic ---------------------

_SENTENCE = ("the patient reports a dry cough for three days without fever and with some chest tightness at "
             'night; she says "it is worse when lying down" and takes ibuprofen 400 mg')
WORDS = tuple(_SENTENCE.split(" "))


def _utterance(name: str, n: int, i: int) -> tuple[float, float, str, str]:
    words = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(12 + i % 9))
    return i * 15.0, i * 15.0 + 12.5, f"S{i % 2 + 1}", f"{words} ({name} {n}.{i})"


def make_finished_sessions(store: SessionStore, count: int, segments: int = 60, *, device_id: str = "dev-a",
                           site: str = "site1", enqueue: bool = True, name: str = "Patient",
                           bulk: bool = False) -> list[str]:
    """`count` finished visits of `segments` utterances (60 ≈ a 15-minute visit), queued for sending.

    Every state change and the enqueue go through the store's API. Segments too, unless `bulk`:
    then each session's segments are written with one executemany of exactly the rows
    add_segment() writes (add_segment costs ~1 ms per call in sqlite-utils bookkeeping, which made
    1,000 visits of 150 segments a 4-minute set-up). Either way one transaction per 100 sessions.
    """
    ids: list[str] = []
    for first in range(0, count, 100):
        with store.batch():
            for n in range(first, min(count, first + 100)):
                s = store.create_session(f"{name} {n:04d}", "exam-3", "Dr Osei", device_id, site, ["SOAP"], True)
                store.transition(s.id, "recording", "panel")
                if bulk:
                    _insert_segments(store, s.id, [_utterance(name, n, i) for i in range(segments)])
                else:
                    for i in range(segments):
                        store.add_segment(s.id, *_utterance(name, n, i))
                store.transition(s.id, "stopped", "panel")
                if enqueue:
                    store.enqueue(s.id, "panel")
                ids.append(s.id)
    return ids


def _insert_segments(store: SessionStore, session_id: str, rows: list[tuple[float, float, str, str]]) -> None:
    """The rows add_segment() would write for `rows` (start, end, speaker, text) at revision 1,
    plus the default speaker names; the caller holds the transaction (store.batch())."""
    from appliance.store.edits import default_speaker_name
    from appliance.store.ids import uuid7

    now = time.time()
    conn = store._db.conn  # fixture only: the store has no bulk append (the pipeline never needs one)
    conn.executemany(
        'INSERT INTO segments (id, session_id, seq, start, "end", speaker, text, revision, deleted, created_at) '
        "VALUES (?, ?, ?, ?, ?, ?, ?, 1, 0, ?)",
        [(uuid7(int(now * 1000)), session_id, seq, start, end, speaker, text.strip(), now)
         for seq, (start, end, speaker, text) in enumerate(rows, 1)],
    )
    conn.executemany("INSERT OR IGNORE INTO speakers (session_id, label, name) VALUES (?, ?, ?)",
                     [(session_id, label, default_speaker_name(label)) for label in sorted({r[2] for r in rows})])


def assert_same_at_clinic(store: SessionStore, repo: TranscriptStore, session_id: str, revision: int,
                          models: list[dict[str, str]] | None = None) -> None:
    """What the device holds for (session, revision) equals what the clinic stored, field by field."""
    session = store.get_session(session_id)
    segments = store.read_transcript(session_id, "test", "compare with clinic", revision=revision)
    got = repo.get(session_id, revision)
    assert got is not None, f"clinic lacks {session_id} rev {revision}"
    expect = {"session_id": session.id, "revision": revision, "device_id": session.device_id, "site": session.site,
              "room": session.room, "clinician": session.clinician, "name": session.name,
              "started_at": session.started_at, "ended_at": session.ended_at, "templates": list(session.templates),
              "consent": session.consent}
    for key, value in expect.items():
        assert got[key] == value, (session_id, key, got[key], value)
    if models is not None:
        assert got["models"] == models
    assert len(got["segments"]) == len(segments), session_id
    for mine, theirs in zip(segments, got["segments"], strict=True):
        for key in ("id", "start", "end", "speaker", "text"):
            assert getattr(mine, key) == theirs[key], (session_id, mine.id, key)


def wait_until(pred: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout:.0f} s")
