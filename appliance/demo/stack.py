"""The whole path on one machine: Mosquitto (the shipped config, TLS, the ACL of
scripts/pki/make-acl.sh), the clinic server and the room daemon, as child processes.

Used by `appliance demo` and the end-to-end benchmark; the tests' own broker fixture
(tests/broker.py) renders the broker config with `mosquitto_conf` too. Certificates come from
the shipped scripts in scripts/pki/, so this needs a clone of the repository (as `make demo` has).
Every child dies with the process that started it (PR_SET_PDEATHSIG) and is in its own session,
so a Ctrl-C reaches only the demo, which then stops them in order.
"""

from __future__ import annotations

import contextlib
import ctypes
import getpass
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PKI_SCRIPTS = REPO / "scripts" / "pki"
MOSQUITTO_CONF = REPO / "image" / "mosquitto" / "mosquitto.conf"
CLINIC_ID, TOOLS_ID = "clinic-server", "clinic-tools"


def free_port(preferred: int | None = None) -> int:
    """`preferred` if nothing listens there on loopback, else any free port."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred or 0))
        except OSError:
            s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(*args: str | Path) -> str:
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True).stdout


def make_pki(root: Path, devices: dict[str, str]) -> Path:
    """A CA, the broker's certificate (localhost, 127.0.0.1), the clinic server's and tools', and one
    per device (device id → site), all by the shipped scripts; returns `root`."""
    for script in ("make-ca.sh", "make-cert.sh", "make-acl.sh"):
        if not (PKI_SCRIPTS / script).exists():
            raise FileNotFoundError(f"{PKI_SCRIPTS / script} not found: run this from a clone of the repository")
    _run(PKI_SCRIPTS / "make-ca.sh", root)
    _run(PKI_SCRIPTS / "make-cert.sh", root, root, "server", "localhost", "127.0.0.1")
    for name in (CLINIC_ID, TOOLS_ID):
        _run(PKI_SCRIPTS / "make-cert.sh", root, root, "clinic", name)
    for device, site in devices.items():
        issue_device(root, device, site)
    return root


def issue_device(pki: Path, device: str, site: str) -> None:
    if not (pki / f"{device}.crt").exists():
        _run(PKI_SCRIPTS / "make-cert.sh", pki, pki, "device", device, site)


def mosquitto_conf(pki: Path, port: int, data_dir: Path, *, acl: Path, max_packet: int | None = None) -> str:
    """The shipped mosquitto.conf with its paths and port pointed at `pki` and `data_dir`."""
    text = MOSQUITTO_CONF.read_text()
    subs = {
        r"^listener .*$": f"listener {port} 127.0.0.1",
        r"^cafile .*$": f"cafile {pki / 'ca.crt'}",
        r"^certfile .*$": f"certfile {pki / 'server.crt'}",
        r"^keyfile .*$": f"keyfile {pki / 'server.key'}",
        r"^crlfile .*$": f"crlfile {pki / 'ca.crl'}",
        r"^acl_file .*$": f"acl_file {acl}",
        r"^persistence_location .*$": f"persistence_location {data_dir}/",
    }
    if max_packet is not None:
        subs[r"^max_packet_size .*$"] = f"max_packet_size {max_packet}"
    for pattern, repl in subs.items():
        text, n = re.subn(pattern, repl, text, flags=re.M)
        if n != 1:
            raise ValueError(f"{MOSQUITTO_CONF}: expected one line matching {pattern}, found {n}")
    # Run as whoever starts it: as root mosquitto would switch to the user 'mosquitto', which
    # cannot read keys made 0600 by this user.
    return text + f"\nuser {getpass.getuser()}\nlog_dest file {data_dir / 'mosquitto.log'}\nlog_type all\n"


def mosquitto_exe() -> str:
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if exe is None:
        raise FileNotFoundError("mosquitto is not installed (`make setup` installs it with apt)")
    return exe


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies, and a session of its own."""
    os.setsid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Child:
    """One child process with its output in a log file."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.name, self.argv, self.log = name, argv, log
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                         stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode if self.proc else '?'}); "
                                   f"its log {self.log}:\n{self.tail()}")
            with contextlib.suppress(OSError):
                if ready():
                    return
            time.sleep(0.1)
        raise TimeoutError(f"{self.name}: {what} not within {timeout:.0f} s; its log {self.log}:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (a clean shutdown), SIGKILL if it does not end in `timeout`."""
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def listening(port: int) -> Callable[[], bool]:
    def check() -> bool:
        with socket.create_connection(("127.0.0.1", port), 0.3):
            return True
    return check


def mosquitto(pki: Path, workdir: Path, port: int) -> Child:
    """The broker on `port`, with the ACL make-acl.sh writes for the devices issued so far."""
    workdir.mkdir(parents=True, exist_ok=True)
    acl = workdir / "scribe.acl"
    acl.write_text(_run(PKI_SCRIPTS / "make-acl.sh", pki))
    conf = workdir / "mosquitto.conf"
    conf.write_text(mosquitto_conf(pki, port, workdir, acl=acl))
    return Child("the broker (mosquitto)", [mosquitto_exe(), "-c", str(conf)], workdir / "stderr.log")


def clinic_toml(pki: Path, port: int, db: Path, *, notes: bool = True, client_id: str = CLINIC_ID) -> str:
    return (f'[mqtt]\nhost = "localhost"\nport = {port}\nclient_id = "{client_id}"\n'
            f'ca_file = "{pki / "ca.crt"}"\ncert_file = "{pki / f"{CLINIC_ID}.crt"}"\n'
            f'key_file = "{pki / f"{CLINIC_ID}.key"}"\ntool_cert_file = "{pki / f"{TOOLS_ID}.crt"}"\n'
            f'tool_key_file = "{pki / f"{TOOLS_ID}.key"}"\n'
            f'[store]\npath = "{db}"\n[notes]\nenabled = {str(notes).lower()}\n')


def clinic_exe() -> str:
    """The `clinic` console script installed next to this interpreter."""
    exe = Path(sys.executable).with_name("clinic")
    return str(exe) if exe.exists() else shutil.which("clinic") or "clinic"


def clinic(config: Path, log: Path, env: dict[str, str] | None = None) -> Child:
    return Child("the clinic server", [clinic_exe(), "--config", str(config), "run"], log, env)


def device_toml(pki: Path, port: int, device: str, site: str, state_dir: Path, models_dir: Path) -> str:
    """[device], [paths] and [sync] of a room daemon talking to the broker on `port`."""
    return (f'[device]\nid = "{device}"\nsite = "{site}"\nroom = "exam-1"\n'
            f'[paths]\nstate_dir = "{state_dir}"\nmodels_dir = "{models_dir}"\n'
            f'[sync]\nenabled = true\nbroker_host = "localhost"\nbroker_port = {port}\n'
            f'ca_file = "{pki / "ca.crt"}"\ncert_file = "{pki / f"{device}.crt"}"\n'
            f'key_file = "{pki / f"{device}.key"}"\n')


def daemon(config: Path, log: Path, env: dict[str, str] | None = None) -> Child:
    return Child("the room daemon", [sys.executable, "-m", "appliance", "--config", str(config), "run"], log, env)


@dataclass
class Stack:
    """Broker, clinic server and one room daemon started by `start_stack` (stop them with `stop`)."""

    work: Path
    device: str
    panel: str = ""  # the panel's base URL
    children: list[Child] = field(default_factory=list)

    @property
    def daemon(self) -> Child:
        return self.children[-1]

    def stop(self, say: Callable[[str], None] = lambda _: None) -> None:
        for child in reversed(self.children):
            if child.alive():
                say(f"stopping {child.name} (pid {child.pid})")
                child.stop()


def start_stack(stack: Stack, models: Path, audio: Path, *, realtime: bool, panel_port: int = 0,
                site: str = "site1", say: Callable[[str], None] = lambda _: None, asr: str = "") -> Stack:
    """Certificates, Mosquitto, `clinic run` (notes on) and `appliance run` replaying `audio` as its
    microphone, all under `stack.work`; children are added to `stack.children` as they start, so
    the caller can stop what did start if a later step fails. ``asr``: the room's [asr] lines
    (default: the built-in defaults)."""
    from appliance.demo.panel_client import PanelClient

    work = stack.work
    env = {"TMPDIR": str(work / "tmp")}
    (work / "tmp").mkdir(exist_ok=True)
    say(f"demo certificates (clinic CA, broker, clinic server, room {stack.device}) with scripts/pki in {work / 'pki'}")
    pki = make_pki(work / "pki", {stack.device: site})

    broker_port = free_port()
    say(f"starting Mosquitto: shipped config, TLS on 127.0.0.1:{broker_port}, ACL from make-acl.sh")
    broker = mosquitto(pki, work / "broker", broker_port)
    stack.children.append(broker.start())
    broker.wait_ready(listening(broker_port), 15, "listening")

    say("starting the clinic server (clinic run, built-in note generator on)")
    (work / "clinic").mkdir(exist_ok=True)
    clinic_cfg = work / "clinic" / "clinic.toml"
    clinic_cfg.write_text(clinic_toml(pki, broker_port, work / "clinic" / "transcripts.db"))
    server = clinic(clinic_cfg, work / "clinic" / "clinic.log", env)
    stack.children.append(server.start())
    server.wait_ready(lambda: "connected" in server.log.read_text(errors="replace").lower(), 30,
                      "connected to the broker")

    port = free_port(panel_port)
    say(f"starting the room daemon (appliance run): the recording {audio.name} is its microphone, "
        f"replayed {'in real time' if realtime else 'as fast as possible'}")
    device_cfg = work / "appliance.toml"
    device_cfg.write_text(
        device_toml(pki, broker_port, stack.device, site, work / "device", models)
        + f'[capture]\nsource = "file"\nfile = "{audio}"\nrealtime = {str(realtime).lower()}\n'
        f'[daemon]\ncontrol_socket = "{work / "ctl.sock"}"\n[panel]\nport = {port}\n'
        + (f"[asr]\n{asr}" if asr else ""))
    room = daemon(device_cfg, work / "daemon.log", env)
    stack.children.append(room.start())
    stack.panel = f"http://127.0.0.1:{port}"
    client = PanelClient(stack.panel)
    room.wait_ready(lambda: client.status() is not None, 60, "the panel answering")
    if unavailable := client.status().get("unavailable"):
        raise RuntimeError(f"the room daemon cannot record: {unavailable}")
    return stack
