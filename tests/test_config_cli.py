"""`--config` where people write it: before or after the command, for `appliance` and `clinic`,
and the shipped systemd unit's own ExecStart line starting the real daemon."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.cli import build_parser
from clinic.cli import build_parser as build_clinic_parser
from clinic.cli import main as clinic_main
from tests.daemon import DaemonProcess, write_config, write_silent_wav

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "image" / "systemd" / "appliance.service"
UNIT_CONFIG = "/etc/appliance/appliance.toml"


def _exec_start() -> list[str]:
    lines = [ln for ln in UNIT.read_text().splitlines() if ln.startswith("ExecStart=")]
    assert len(lines) == 1, "the unit has exactly one ExecStart="
    return shlex.split(lines[0].removeprefix("ExecStart="))


@pytest.mark.parametrize("command", [
    ["run"], ["config", "check"], ["config", "show"], ["devices"], ["ctl", "status"], ["sessions", "list"],
    ["sessions", "show", "x"], ["transcribe", "a.wav"], ["models", "list"], ["demo"],
])
def test_appliance_config_option_before_or_after_every_command(command):
    parser = build_parser()
    assert parser.parse_args(["--config", "/a.toml", *command]).config == "/a.toml"
    assert parser.parse_args([*command, "--config", "/a.toml"]).config == "/a.toml"
    assert getattr(parser.parse_args(command), "config", None) is None  # absent: $APPLIANCE_CONFIG / default


@pytest.mark.parametrize("command", [
    ["run"], ["sessions", "list"], ["sessions", "show", "x"], ["config", "show"],
    ["command", "resend", "--site", "s", "--device", "d", "--session", "x"],
])
def test_clinic_config_option_before_or_after_every_command(command):
    parser = build_clinic_parser()
    assert parser.parse_args(["--config", "/c.toml", *command]).config == "/c.toml"
    assert parser.parse_args([*command, "--config", "/c.toml"]).config == "/c.toml"


def test_clinic_reads_the_config_named_after_the_command(tmp_path, capsys):
    bad = tmp_path / "clinic.toml"
    bad.write_text("[mqtt]\nport = 0\n")
    assert clinic_main(["config", "show", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "mqtt.port" in err


@pytest.mark.slow
def test_unit_exec_start_line_starts_the_daemon(tmp_path):
    """The unit's ExecStart, read from the file, with only the install paths swapped for this
    machine's: the program (the venv's `appliance` script) and the config file."""
    argv = _exec_start()
    assert argv[0].endswith("/bin/appliance") and UNIT_CONFIG in argv
    config = write_config(tmp_path, write_silent_wav(tmp_path / "silence.wav"))
    program = Path(sys.executable).parent / "appliance"
    argv = [str(program), *(str(config) if a == UNIT_CONFIG else a for a in argv[1:])]
    with DaemonProcess(config, argv=argv) as daemon:  # start() waits until the control socket answers
        assert daemon.status()["state"] == "idle"
        # ... and `appliance ctl status` answers with --config after the command too.
        out = subprocess.run([str(program), "ctl", "status", "--config", str(config)], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert '"ok": true' in out.stdout
