"""`make demo` (`appliance demo`): Mosquitto, the clinic server and the room daemon as real
processes, the bundled recording replayed as the microphone, the note printed; scripted with
DEMO_ONCE=1, and stopped with Ctrl-C; either way no process and no temporary folder is left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.daemon import installed_models_dir

pytestmark = pytest.mark.slow


def demo(tmp: Path, *args: str, once: bool) -> subprocess.Popen[str]:
    env = {**os.environ, "TMPDIR": str(tmp), "DEMO_ONCE": "1" if once else "0"}
    return subprocess.Popen([sys.executable, "-m", "appliance", "demo", "--models-dir", str(installed_models_dir()),
                             "--port", "0", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, stdin=subprocess.DEVNULL)


def processes_under(folder: Path) -> list[str]:
    """Processes whose command line names anything in `folder` (the demo's configs live there)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(folder) in cmd:
                found.append(f"{proc.name}: {cmd}")
    return found


def test_demo_once_prints_the_note_and_leaves_nothing_behind(tmp_path: Path) -> None:
    p = demo(tmp_path, "--fast", once=True)
    out, _ = p.communicate(timeout=280)
    assert p.returncode == 0, out
    steps = [line for line in out.splitlines() if line.startswith("==> ")]
    for words in ("certificates", "starting Mosquitto", "starting the clinic server", "starting the room daemon",
                  "panel: http://127.0.0.1:", "Start on the panel", "Stop on the panel", "Send to clinic",
                  "SOAP note on the panel's Review screen", "all stopped"):
        assert any(words in s for s in steps), (words, out)
    # the live transcript was printed from the panel's event stream, recognised as spoken
    assert "What brings you in today?" in out and "ibuprofen" in out
    note = out.split("Review screen:", 1)[1].split("==> ", 1)[0]
    for section in ("SUBJECTIVE", "PLAN"):
        assert section in note
    assert "400 mg" in note and "rapid strep test" in note  # from the transcript, through the clinic
    assert processes_under(tmp_path) == []
    assert list(tmp_path.iterdir()) == []  # the demo's folder (stores, keys, logs) is gone


def test_ctrl_c_stops_everything_cleanly(tmp_path: Path) -> None:
    p = demo(tmp_path, once=False)  # in real time: interrupted while the visit is being recorded
    assert p.stdout is not None
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        lines.append(line)
        if "Start on the panel" in line or not line:
            break
    assert "Start on the panel" in lines[-1], "".join(lines)
    [work] = tmp_path.iterdir()
    assert len(processes_under(work)) == 3  # broker, clinic server, room daemon
    p.send_signal(signal.SIGINT)  # Ctrl-C: the children have sessions of their own, only the demo gets it
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 130, out
    assert "interrupted" in out and "all stopped" in out.splitlines()[-1]
    assert processes_under(tmp_path) == []
    assert list(tmp_path.iterdir()) == []
