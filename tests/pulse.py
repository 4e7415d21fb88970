"""A private PulseAudio server so tests can drive the real PortAudio capture path.

No sound card is needed: a 4-channel null sink named "room" plays what ``paplay`` sends
it, and its monitor source "room.monitor" is what PortAudio's ALSA "pulse" device
records. The server runs as a child process with its own runtime, state and config
directories under a temp dir, so it never touches (or is reached by mistake instead of)
any PulseAudio already running on the machine.

Use the ``pulse`` fixture (``from tests.pulse import pulse``) or the ``pulse_server()``
context manager (e.g. inside a module-scoped fixture of your own).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import soundfile as sf

ROOM = "room"
ROOM_CHANNELS = 4
ROOM_RATE = 48000
# PulseAudio remixes between differing channel maps, which would blend the channels of a
# test signal. The ALSA "pulse" device records 4 channels as quad (FL, FR, RL, RR), while a
# sink and paplay default to FL, FC, FR, RC; so the sink and every playback use quad too.
ROOM_CHANNEL_MAP = "front-left,front-right,rear-left,rear-right"
ROOM_MODULE_ARGS = f"sink_name={ROOM} channels={ROOM_CHANNELS} rate={ROOM_RATE} channel_map={ROOM_CHANNEL_MAP}"
START_TIMEOUT_S = 10.0


def missing_requirement() -> str | None:
    """Why the real PortAudio path cannot be tested here, naming the package to install."""
    if shutil.which("pulseaudio") is None:
        return "pulseaudio is not installed (apt package pulseaudio; `make test` installs it)"
    for tool in ("pactl", "paplay"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt package pulseaudio-utils)"
    try:
        import pyaudio  # noqa: F401
    except ImportError:
        return "PyAudio is not installed (pip extra 'device'; needs apt package portaudio19-dev)"
    return None


@dataclass
class PulseServer:
    proc: subprocess.Popen[bytes]
    root: Path
    env: dict[str, str]  # what a client process (pactl, paplay) needs to reach this server
    log_path: Path

    def pactl(self, *args: str, check: bool = True) -> str:
        out = subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, timeout=10)
        if check and out.returncode != 0:
            raise RuntimeError(f"pactl {' '.join(args)} failed: {out.stderr.strip()}")
        return out.stdout

    def play(self, path: str | Path, device: str = ROOM, timeout: float = 30.0) -> None:
        """Play a sound file into ``device`` and return once it has been played."""
        subprocess.run(_paplay(path, device), env=self.env, check=True, timeout=timeout)

    def play_async(self, path: str | Path, device: str = ROOM) -> subprocess.Popen[bytes]:
        return subprocess.Popen(_paplay(path, device), env=self.env)

    def room_modules(self) -> list[int]:
        """Indices of the loaded null-sink modules that provide the room sink."""
        ids = []
        for line in self.pactl("list", "short", "modules").splitlines():
            fields = line.split("\t")
            if len(fields) >= 3 and fields[1] == "module-null-sink" and f"sink_name={ROOM}" in fields[2]:
                ids.append(int(fields[0]))
        return ids

    def unload_room(self) -> None:
        """The microphone is unplugged: the room sink and its monitor source disappear."""
        for module in self.room_modules():
            self.pactl("unload-module", str(module))

    def load_room(self) -> None:
        """The microphone is plugged back in."""
        self.pactl("load-module", "module-null-sink", *ROOM_MODULE_ARGS.split())
        self.pactl("set-default-source", f"{ROOM}.monitor")

    def recording_streams(self) -> int:
        """Open capture streams (source outputs): 0 means nobody is reading the microphone."""
        return len([ln for ln in self.pactl("list", "short", "source-outputs").splitlines() if ln.strip()])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _paplay(path: str | Path, device: str) -> list[str]:
    cmd = ["paplay", f"--device={device}", str(path)]
    if sf.info(str(path)).channels == ROOM_CHANNELS:
        cmd.insert(1, f"--channel-map={ROOM_CHANNEL_MAP}")  # one file channel per room channel
    return cmd


@contextlib.contextmanager
def pulse_server() -> Iterator[PulseServer]:
    """Start a private PulseAudio with the "room" null sink; point this process's clients at it."""
    reason = missing_requirement()
    if reason:
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="pulse-test-"))
    dirs = {name: root / name for name in ("run", "home", "config", "state")}
    for d in dirs.values():
        d.mkdir(mode=0o700)
    client_conf = root / "client.conf"
    client_conf.write_text("autospawn = no\n")  # a client must never start a stray server
    socket = dirs["run"] / "pulse" / "native"
    server_env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
    server_env.update(
        HOME=str(dirs["home"]), XDG_RUNTIME_DIR=str(dirs["run"]), XDG_CONFIG_HOME=str(dirs["config"]),
        PULSE_RUNTIME_PATH=str(dirs["run"] / "pulse"), PULSE_STATE_PATH=str(dirs["state"]),
    )
    client_vars = {
        "PULSE_SERVER": f"unix:{socket}",
        "PULSE_CLIENTCONFIG": str(client_conf),
        "PULSE_COOKIE": str(dirs["config"] / "pulse" / "cookie"),
        "PULSE_SOURCE": f"{ROOM}.monitor",
        "PULSE_SINK": ROOM,
    }
    log_path = root / "pulseaudio.log"
    cmd = [
        "pulseaudio", "--daemonize=no", "-n", "--exit-idle-time=-1", "--use-pid-file=no",
        "--realtime=no", "--high-priority=no", "--log-target=stderr",
        f"--load=module-null-sink {ROOM_MODULE_ARGS}", "--load=module-native-protocol-unix",
    ]
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(cmd, env=server_env, stdout=log_file, stderr=subprocess.STDOUT)
    server = PulseServer(proc, root, {**os.environ, **client_vars}, log_path)
    saved = {k: os.environ.get(k) for k in client_vars}
    try:
        _wait_until_ready(server)
        # PortAudio's ALSA "pulse" device connects through libpulse in this very process.
        os.environ.update(client_vars)
        yield server
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        shutil.rmtree(root, ignore_errors=True)


def _wait_until_ready(server: PulseServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"pulseaudio exited with {server.proc.returncode}:\n{server.log()}")
        probe = subprocess.run(["pactl", "info"], env=server.env, capture_output=True, timeout=5)
        if probe.returncode == 0 and f"{ROOM}.monitor" in server.pactl("list", "short", "sources"):
            return
        time.sleep(0.1)
    raise RuntimeError(f"pulseaudio did not come up within {START_TIMEOUT_S:.0f} s:\n{server.log()}")


@pytest.fixture
def pulse() -> Iterator[PulseServer]:
    """A fresh private PulseAudio server with the 4-channel 48 kHz "room" sink."""
    with pulse_server() as server:
        yield server
