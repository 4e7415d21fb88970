"""The clinic server's systemd unit: it verifies cleanly, is hardened like the room's
(exposure <= 2.5), and runs `clinic run` as `clinic` with its store in its state directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinic.config import ClinicConfig
from tests.systemd import (
    MAX_EXPOSURE,
    UNITS,
    assert_verifies,
    directives,
    exposure,
    local_copy,
    needs_systemd_analyze,
)

UNIT = UNITS / "clinic-server.service"


@pytest.fixture()
def unit_copy(tmp_path: Path) -> Path:
    return local_copy(UNIT, "clinic", tmp_path)


@needs_systemd_analyze
def test_clinic_unit_verifies_cleanly(unit_copy: Path) -> None:
    assert_verifies(unit_copy)


@needs_systemd_analyze
def test_clinic_unit_exposure_score(unit_copy: Path) -> None:
    score, failing = exposure(unit_copy)
    assert score <= MAX_EXPOSURE, f"exposure {score} > {MAX_EXPOSURE}; open items:\n{failing}"


def test_clinic_unit_runs_the_server_as_clinic_with_its_store_in_the_state_directory() -> None:
    d = directives(UNIT.read_text())
    expected = {
        "ExecStart": "/opt/clinic/.venv/bin/clinic --config /etc/clinic/clinic.toml run",
        "User": "clinic", "StateDirectory": "clinic", "StateDirectoryMode": "0700", "UMask": "0077",
        "Restart": "on-failure", "LimitCORE": "0", "ProtectSystem": "strict", "PrivateDevices": "yes",
    }
    for key, value in expected.items():
        assert d.get(key) == [value], f"{key}={d.get(key)}"
    # The only writable place is the state directory: the default store must live there.
    assert Path(ClinicConfig().store.path).parent == Path("/var/lib") / d["StateDirectory"][0]
