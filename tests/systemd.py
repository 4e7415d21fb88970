"""systemd-analyze on the shipped units: verify, exposure score, and the unit's directives.
Shared by the room daemon's and the clinic server's unit tests."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[1] / "image" / "systemd"
MAX_EXPOSURE = 2.5

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def directives(text: str) -> dict[str, list[str]]:
    """Key -> all values, ignoring sections (the units' keys are unique across them)."""
    out: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def local_copy(unit: Path, program: str, dest_dir: Path) -> Path:
    """The unit with ExecStart pointing at `program` of this venv (or /bin/true), so verify can
    check it on this machine."""
    exe = Path(sys.executable).parent / program
    binary = str(exe) if exe.is_file() and os.access(exe, os.X_OK) else "/bin/true"
    text, n = re.subn(r"^ExecStart=\S+", f"ExecStart={binary}", unit.read_text(), count=1, flags=re.M)
    assert n == 1, "unit has no ExecStart="
    dest = dest_dir / unit.name
    dest.write_text(text)
    return dest


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0", "LC_ALL": "C.UTF-8"}
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, env=env, timeout=60)


def assert_verifies(unit: Path, root: Path | None = None) -> None:
    """systemd-analyze verify is clean about `unit`; with `root`, the unit of that name installed
    in that root file system (as provisioning left it)."""
    res = analyze("verify", f"--root={root}", unit.name) if root else analyze("verify", str(unit))
    output = (res.stdout + res.stderr).strip()
    # Complaints name the unit file or the unit; anything else would be host noise.
    about_unit = [ln for ln in output.splitlines() if unit.name in ln or str(unit) in ln]
    assert not about_unit, "systemd-analyze verify complained:\n" + output
    assert res.returncode == 0, f"systemd-analyze verify exited {res.returncode}:\n{output}"


def exposure(unit: Path) -> tuple[float, str]:
    """systemd-analyze security's overall exposure of `unit`, and its open (✗) items."""
    res = analyze("security", "--offline=yes", "--no-pager", str(unit))
    output = res.stdout + res.stderr
    match = re.search(r"Overall exposure level for \S+:\s*([0-9]+(?:\.[0-9]+)?)", output)
    assert match, f"no exposure score in systemd-analyze security output (rc={res.returncode}):\n{output}"
    failing = "\n".join(ln for ln in output.splitlines() if ln.lstrip().startswith("✗"))
    return float(match.group(1)), failing
