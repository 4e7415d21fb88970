"""The room daemon's systemd unit: it verifies cleanly and stays hardened (exposure <= 2.5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.systemd import (
    MAX_EXPOSURE,
    UNITS,
    assert_verifies,
    directives,
    exposure,
    local_copy,
    needs_systemd_analyze,
)

UNIT = UNITS / "appliance.service"

pytestmark = needs_systemd_analyze


@pytest.fixture()
def unit_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an executable that exists on this machine."""
    return local_copy(UNIT, "appliance", tmp_path)


def test_unit_verifies_cleanly(unit_copy: Path) -> None:
    assert_verifies(unit_copy)


def test_unit_exposure_score(unit_copy: Path) -> None:
    score, failing = exposure(unit_copy)
    assert score <= MAX_EXPOSURE, f"exposure {score} > {MAX_EXPOSURE}; open items:\n{failing}"


def test_unit_keeps_audio_gpio_and_lifecycle() -> None:
    d = directives(UNIT.read_text())
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
