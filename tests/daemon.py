"""Running the real daemon (`appliance run`) as a child process for integration tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from appliance.config.schema import VadConfig
from appliance.daemon.control import send_command
from appliance.vad import EnergySegmenter, Utterance
from tests.speech import RATE, dialogue

PHRASES = [
    "Good morning, what brings you in today?",
    "I have had chest pain since Tuesday.",
    "Does the pain get worse when you climb stairs?",
    "Yes, and I get short of breath.",
    "Are you taking any medication at the moment?",
    "Only aspirin, eighty one milligrams a day.",
    "I would like to get an electrocardiogram today.",
    "All right, that sounds good to me.",
]


def installed_models_dir(model: str = "whisper-tiny.en") -> Path:
    """The models `make models` installed (APPLIANCE_TEST_MODELS, else <repo>/models); skip if ``model`` is absent."""
    import pytest

    path = Path(os.environ.get("APPLIANCE_TEST_MODELS") or Path(__file__).resolve().parents[1] / "models")
    if not (path / model / "manifest.json").exists():
        pytest.skip(f"model {model} not installed in {path} (run: make models)")
    return path


def write_visit_wav(path: Path, gap_s: float = 1.0) -> tuple[np.ndarray, list[tuple[float, float]]]:
    audio, truth = dialogue(PHRASES, gap_s=gap_s)
    sf.write(path, audio, RATE, subtype="PCM_16")
    pcm, _ = sf.read(path, dtype="float32")  # what the daemon will read back
    return pcm, truth


def offline_utterances(pcm: np.ndarray) -> list[Utterance]:
    """The utterances the daemon's energy VAD (these tests' config) finds in ``pcm``, all at once."""
    seg = EnergySegmenter(VadConfig())
    return seg.feed(pcm, 0.0) + seg.flush()


def write_silent_wav(path: Path, seconds: float = 1.0) -> Path:
    """A replay source for tests about the daemon itself, not about speech."""
    sf.write(path, np.zeros(int(RATE * seconds), dtype=np.float32), RATE, subtype="PCM_16")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp: Path, audio: Path, *, realtime: bool = True, extra: str = "", models_dir: Path | None = None,
                 asr: str = 'engine = "none"\n') -> Path:
    """A daemon replaying ``audio``; ``asr``: the [asr] section's lines (default: timing only, as
    these tests are about the daemon and the store; recognition is tested on its own)."""
    cfg = tmp / "appliance.toml"
    cfg.write_text(
        f'[paths]\nstate_dir = "{tmp / "state"}"\nmodels_dir = "{models_dir or tmp / "models"}"\n'
        f'[capture]\nsource = "file"\nfile = "{audio}"\nrealtime = {str(realtime).lower()}\n'
        f'[daemon]\ncontrol_socket = "{tmp / "ctl.sock"}"\nstatus_interval_s = 0.2\n'
        f'[asr]\n{asr}[vad]\nengine = "energy"\n{extra}'
        # The panel (port 8080 by default) only where a test asks for it: daemons of
        # consecutive tests must not compete for one port.
        + ("" if "[panel]" in extra else "\n[panel]\nenabled = false\n")
    )
    return cfg


class DaemonProcess:
    def __init__(self, config: Path, env: dict[str, str] | None = None, *, cwd: Path | None = None,
                 preexec_fn: Any = None, argv: list[str] | None = None) -> None:
        """``argv``: the command that starts the daemon (default: ``python -m appliance --config F run``)."""
        self.config = config
        self.cwd, self.preexec_fn = cwd, preexec_fn
        self.argv = argv or [sys.executable, "-m", "appliance", "--config", str(config), "run"]
        self.socket = str(config.parent / "ctl.sock")
        self.log = config.parent / "daemon.log"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> DaemonProcess:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd,
                preexec_fn=self.preexec_fn,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}:\n{self.log.read_text()}")
            with contextlib.suppress(OSError):
                if send_command(self.socket, {"cmd": "status"}, timeout=2)["ok"]:
                    return self
            time.sleep(0.1)
        raise TimeoutError(f"daemon did not come up:\n{self.log.read_text()}")

    def ctl(self, cmd: str, **kw: Any) -> dict[str, Any]:
        return send_command(self.socket, {"cmd": cmd, **kw})

    def status(self) -> dict[str, Any]:
        return self.ctl("status")["status"]

    def wait_for(self, pred: Any, timeout: float = 30.0, what: str = "condition") -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.status()
            if pred(st):
                return st
            time.sleep(0.05)
        raise TimeoutError(f"{what} not reached; last status {st}\n{self.log.read_text()}")

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 15.0) -> float:
        assert self.proc is not None
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        self.proc.wait(timeout)
        return time.monotonic() - t0

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
