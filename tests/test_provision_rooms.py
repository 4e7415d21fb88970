"""The rooms playbook run for real against a Debian bookworm root file system.

The rootfs comes from debootstrap (cached outside the clone by scripts/provision/rootfs.sh);
Ansible reaches it through its chroot connection, exactly as it would reach a room over SSH
except for the transport. `make test-provision` runs these (they take minutes).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import free_port

ROOT = Path(__file__).resolve().parents[1]
ANSIBLE = ROOT / "ansible"
CACHE = Path(os.environ.get("PROVISION_CACHE", "/var/cache/exam-scribe"))
DEVICE_ID = "room-test"

pytestmark = [
    pytest.mark.provision,
    pytest.mark.skipif(os.geteuid() != 0, reason="chroot and debootstrap need root"),
    pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible is not installed (make setup)"),
    pytest.mark.skipif(shutil.which("debootstrap") is None, reason="debootstrap is not installed (make setup)"),
]


class Room:
    """A rootfs provisioned as one room, and how to run things inside it."""

    def __init__(self, root: Path, inventory: Path, first_run: str, panel_port: int) -> None:
        self.root, self.inventory, self.first_run, self.panel_port = root, inventory, first_run, panel_port

    def playbook(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ansible-playbook", "-i", str(self.inventory), "rooms.yml", *args], cwd=ANSIBLE,
                              capture_output=True, text=True, timeout=1500)

    def run(self, *argv: str, user: str = "root", check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"}
        return subprocess.run(["/usr/sbin/chroot", f"--userspec={user}:{user}", str(self.root), *argv],
                              capture_output=True, text=True, timeout=120, check=check, env=env)


def _recap(output: str) -> dict[str, int]:
    match = re.search(rf"^{DEVICE_ID}\s*:\s*(.*)$", output, re.M)
    assert match, "no PLAY RECAP line:\n" + output[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Room]:
    base = tmp_path_factory.mktemp("provision")
    root = base / "rootfs"
    subprocess.run([str(ROOT / "scripts" / "provision" / "rootfs.sh"), str(root)], check=True, timeout=1800)
    subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
    port = free_port()
    inventory = base / "hosts.yml"
    inventory.write_text(
        "all:\n  children:\n    rooms:\n      hosts:\n"
        f"        {DEVICE_ID}:\n"
        "          ansible_connection: community.general.chroot\n"
        f"          ansible_host: {root}\n"
        # Wheels and models are prepared once and reused by later runs, like a controller's.
        f"          appliance_bundle_dir: {CACHE / 'bundle'}\n"
        f"          appliance_panel_port: {port}\n"
    )
    try:
        first = subprocess.run(["ansible-playbook", "-i", str(inventory), "rooms.yml"], cwd=ANSIBLE,
                               capture_output=True, text=True, timeout=1800)
        assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
        yield Room(root, inventory, first.stdout, port)
    finally:
        subprocess.run(["umount", "-l", str(root / "proc")], check=False)
        # Only after the unmount: never walk a mounted /proc while deleting.
        if not (root / "proc" / "self").exists():
            shutil.rmtree(root, ignore_errors=True)


def test_first_run_installs_user_software_models_and_config(room: Room) -> None:
    recap = _recap(room.first_run)
    assert recap["failed"] == 0 and recap["changed"] > 0
    passwd = room.run("getent", "passwd", "appliance").stdout
    assert passwd.split(":")[6].strip() == "/usr/sbin/nologin"
    assert "audio" in room.run("id", "-nG", "appliance").stdout.split()
    version = room.run("/opt/appliance/.venv/bin/python", "-c", "import appliance, sys; print(appliance.__file__)")
    assert version.stdout.startswith("/opt/appliance/.venv/lib/")
    check = room.run("/opt/appliance/.venv/bin/appliance", "config", "check", "/etc/appliance/appliance.toml")
    assert "OK" in check.stdout + check.stderr
    # Every model file matches the sha256 of the manifest built on the controller.
    verify = room.run("/opt/appliance/.venv/bin/appliance", "models", "verify", "--dir", "/opt/appliance/models")
    assert verify.returncode == 0
    for name in ("whisper-tiny.en", "silero-vad", "voicefilter-embedder"):
        assert (room.root / "opt/appliance/models" / name / "manifest.json").is_file()
    config = (room.root / "etc/appliance/appliance.toml").read_text()
    assert f'id = "{DEVICE_ID}"' in config
    assert (room.root / "etc/hostname").read_text().strip() == DEVICE_ID


def test_unit_is_enabled_and_verifies_in_the_rootfs(room: Room) -> None:
    wants = room.root / "etc/systemd/system/multi-user.target.wants/appliance.service"
    assert wants.is_symlink()
    installed = room.root / "etc/systemd/system/appliance.service"
    assert installed.read_text() == (ROOT / "image/systemd/appliance.service").read_text()
    res = subprocess.run(["systemd-analyze", "verify", f"--root={room.root}", "appliance.service"],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "SYSTEMD_COLORS": "0"})
    about_unit = [ln for ln in (res.stdout + res.stderr).splitlines() if "appliance.service" in ln]
    assert not about_unit and res.returncode == 0, res.stdout + res.stderr


def test_the_units_own_execstart_starts_the_daemon(room: Room) -> None:
    unit = (room.root / "etc/systemd/system/appliance.service").read_text()
    execstart = re.search(r"^ExecStart=(.+)$", unit, re.M).group(1).split()
    env = dict(re.findall(r"^Environment=(\w+)=(\S+)$", unit, re.M))
    # What systemd does before ExecStart: RuntimeDirectory= and StateDirectory=, 0700, the user's.
    for d in ("run/appliance", "var/lib/appliance"):
        (room.root / d).mkdir(parents=True, exist_ok=True)
        room.run("chown", "appliance:appliance", "/" + d)
        (room.root / d).chmod(0o700)
    daemon = subprocess.Popen(["/usr/sbin/chroot", "--userspec=appliance:appliance", str(room.root), "env", "-i",
                               *(f"{k}={v}" for k, v in env.items()), *execstart],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline and daemon.poll() is None:
            status = room.run("/opt/appliance/.venv/bin/appliance", "--config", "/etc/appliance/appliance.toml",
                              "ctl", "status", user="appliance", check=False)
            if status.returncode == 0:
                break
            time.sleep(1)
        assert daemon.poll() is None, f"daemon exited {daemon.returncode}:\n{daemon.stdout.read()}"
        assert status is not None and status.returncode == 0, status.stderr if status else "no answer"
        assert '"state": "idle"' in status.stdout
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()


def test_second_run_changes_nothing_and_check_mode_works(room: Room) -> None:
    again = room.playbook()
    assert again.returncode == 0, again.stdout[-4000:]
    recap = _recap(again.stdout)
    assert recap["changed"] == 0, "not idempotent:\n" + "\n".join(
        ln for ln in again.stdout.splitlines() if ln.startswith(("TASK", "changed")))
    checked = room.playbook("--check", "--diff")
    assert checked.returncode == 0, checked.stdout[-4000:]
    assert _recap(checked.stdout)["changed"] == 0, "\n".join(
        ln for ln in checked.stdout.splitlines() if ln.startswith(("TASK", "changed", "---", "+++")))


def test_a_bad_variable_fails_the_play_naming_the_key_and_keeps_the_old_config(room: Room) -> None:
    before = (room.root / "etc/appliance/appliance.toml").read_text()
    bad = room.playbook("--tags", "appliance_config", "-e", "appliance_keep_days=-3")
    assert bad.returncode != 0
    assert "keep_days" in bad.stdout
    assert (room.root / "etc/appliance/appliance.toml").read_text() == before
