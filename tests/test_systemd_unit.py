"""The room daemon's systemd unit: it verifies cleanly and stays hardened (exposure <= 2.5)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "image" / "systemd" / "appliance.service"
MAX_EXPOSURE = 2.5

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def _directives(text: str) -> dict[str, list[str]]:
    """Key -> all values, ignoring sections (the unit's keys are unique across them)."""
    out: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.fixture()
def unit_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an executable that exists on this machine."""
    exe = Path(sys.executable).parent / "appliance"
    binary = str(exe) if exe.is_file() and os.access(exe, os.X_OK) else "/bin/true"
    text = UNIT.read_text()
    text, n = re.subn(r"^ExecStart=\S+", f"ExecStart={binary}", text, count=1, flags=re.M)
    assert n == 1, "unit has no ExecStart="
    dest = tmp_path / UNIT.name
    dest.write_text(text)
    return dest


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0", "LC_ALL": "C.UTF-8"}
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, env=env, timeout=60)


def test_unit_verifies_cleanly(unit_copy: Path) -> None:
    res = _run("verify", str(unit_copy))
    output = (res.stdout + res.stderr).strip()
    # Complaints name the unit file or the unit; anything else would be host noise.
    about_unit = [ln for ln in output.splitlines() if unit_copy.name in ln or str(unit_copy) in ln]
    assert not about_unit, "systemd-analyze verify complained:\n" + output
    assert res.returncode == 0, f"systemd-analyze verify exited {res.returncode}:\n{output}"


def test_unit_exposure_score(unit_copy: Path) -> None:
    res = _run("security", "--offline=yes", "--no-pager", str(unit_copy))
    output = res.stdout + res.stderr
    match = re.search(r"Overall exposure level for \S+:\s*([0-9]+(?:\.[0-9]+)?)", output)
    assert match, f"no exposure score in systemd-analyze security output (rc={res.returncode}):\n{output}"
    score = float(match.group(1))
    failing = "\n".join(ln for ln in output.splitlines() if ln.lstrip().startswith("✗"))
    assert score <= MAX_EXPOSURE, f"exposure {score} > {MAX_EXPOSURE}; open items:\n{failing}"


def test_unit_keeps_audio_gpio_and_lifecycle() -> None:
    d = _directives(UNIT.read_text())
    # Direct ALSA must stay reachable: a closed device policy with explicit allowances.
    assert "char-alsa rw" in d.get("DeviceAllow", [])
    assert "char-gpiochip rw" in d.get("DeviceAllow", [])
    assert d.get("DevicePolicy") == ["closed"]
    assert "yes" not in [v.lower() for v in d.get("PrivateDevices", [])]
    assert "audio" in " ".join(d.get("SupplementaryGroups", [])).split()
    expected = {
        "Type": "notify", "NotifyAccess": "main", "WatchdogSec": "30", "Restart": "on-failure",
        "TimeoutStopSec": "15", "KillMode": "mixed", "User": "appliance", "StateDirectory": "appliance",
        "StateDirectoryMode": "0700", "RuntimeDirectory": "appliance", "UMask": "0077",
        "ExecStart": "/opt/appliance/.venv/bin/appliance run --config /etc/appliance/appliance.toml",
    }
    for key, value in expected.items():
        assert d.get(key) == [value], f"{key}={d.get(key)}"
