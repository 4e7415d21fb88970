"""The site playbook run for real: one clinic server and one room, each a Debian bookworm root
file system made with debootstrap (cached outside the clone by scripts/provision/rootfs.sh).

Ansible reaches them through its chroot connection, exactly as it would reach them over SSH
but for the transport. The controller's clinic CA lives in a temporary folder. What systemd
would do is done by hand, from the installed unit files: `ExecStart=` is read from each unit
and run inside its rootfs as the unit's `User=`. `make test-provision` runs these (minutes).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.broker import free_port, wait_until
from tests.systemd import assert_verifies

ROOT = Path(__file__).resolve().parents[1]
ANSIBLE = ROOT / "ansible"
CACHE = Path(os.environ.get("PROVISION_CACHE", "/var/cache/exam-scribe"))
ROOM, CLINIC, SITE = "room-test", "clinic-test", "site-test"

pytestmark = [
    pytest.mark.provision,
    # The first test pays for provisioning two root file systems (minutes; more on a busy machine).
    pytest.mark.timeout(2400),
    pytest.mark.skipif(os.geteuid() != 0, reason="chroot and debootstrap need root"),
    pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible is not installed (make setup)"),
    pytest.mark.skipif(shutil.which("debootstrap") is None, reason="debootstrap is not installed (make setup)"),
]


class Host:
    """A provisioned rootfs, and how to run things inside it."""

    def __init__(self, name: str, root: Path) -> None:
        self.name, self.root = name, root
        self.services: list[subprocess.Popen[str]] = []

    def run(self, *argv: str, user: str = "root", check: bool = True, timeout: float = 120,
            ) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"}
        return subprocess.run(["/usr/sbin/chroot", f"--userspec={user}:{user}", str(self.root), *argv],
                              capture_output=True, text=True, timeout=timeout, check=check, env=env)

    def start_unit(self, unit: str) -> subprocess.Popen[str]:
        """The installed unit's ExecStart=, as its User=, with its Environment= and directories."""
        text = (self.root / "etc/systemd/system" / unit).read_text()
        execstart = re.search(r"^ExecStart=(.+)$", text, re.M).group(1).split()
        user = re.search(r"^User=(\S+)$", text, re.M).group(1)
        env = dict(re.findall(r"^Environment=(\w+)=(\S+)$", text, re.M))
        for key, base in (("RuntimeDirectory", "run"), ("StateDirectory", "var/lib")):
            if m := re.search(rf"^{key}=(\S+)$", text, re.M):
                d = self.root / base / m.group(1)
                d.mkdir(parents=True, exist_ok=True)
                self.run("chown", f"{user}:{user}", f"/{base}/{m.group(1)}")
                d.chmod(0o700)
        proc = subprocess.Popen(["/usr/sbin/chroot", f"--userspec={user}:{user}", str(self.root), "env", "-i",
                                 *(f"{k}={v}" for k, v in env.items()), *execstart],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.services.append(proc)
        return proc

    def start_broker(self) -> subprocess.Popen[str]:
        """Mosquitto from its installed config (it drops to its own user, as under systemd)."""
        argv = ["/usr/sbin/chroot", str(self.root), "mosquitto", "-c", "/etc/mosquitto/mosquitto.conf"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        self.services.append(proc)
        return proc

    def stop_services(self) -> None:
        for proc in reversed(self.services):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.services.clear()


class Site:
    def __init__(self, base: Path, room: Host, clinic: Host, inventory: Path, port: int, first_run: str) -> None:
        self.base, self.room, self.clinic, self.inventory, self.port = base, room, clinic, inventory, port
        self.first_run = first_run
        self.pki = base / "pki"

    def playbook(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ansible-playbook", "-i", str(self.inventory), name, *args], cwd=ANSIBLE,
                              capture_output=True, text=True, timeout=1800)


def recap(output: str, host: str) -> dict[str, int]:
    match = re.search(rf"^{host}\s*:\s*(.*)$", output, re.M)
    assert match, f"no PLAY RECAP line for {host}:\n" + output[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


def changed_tasks(output: str) -> str:
    return "\n".join(ln for ln in output.splitlines() if ln.startswith(("TASK", "changed", "fatal")))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("provision")
    hosts = {name: Host(name, base / name) for name in (ROOM, CLINIC)}
    for host in hosts.values():
        subprocess.run([str(ROOT / "scripts" / "provision" / "rootfs.sh"), str(host.root)], check=True, timeout=1800)
        subprocess.run(["mount", "-t", "proc", "proc", str(host.root / "proc")], check=True)
    port = free_port()
    inventory = base / "hosts.yml"
    inventory.write_text(f"""\
all:
  vars:
    ansible_connection: community.general.chroot
    scribe_site: {SITE}
    scribe_broker_host: localhost
    scribe_pki_dir: {base / 'pki'}
    # Wheels and models are prepared once and reused by later runs, like a controller's.
    scribe_bundle_dir: {CACHE / 'bundle'}
  children:
    clinic:
      hosts:
        {CLINIC}:
          ansible_host: {hosts[CLINIC].root}
          clinic_broker_port: {port}
    rooms:
      hosts:
        {ROOM}:
          ansible_host: {hosts[ROOM].root}
          appliance_sync_enabled: true
          appliance_broker_port: {port}
          appliance_panel_port: {free_port()}
""")
    try:
        first = subprocess.run(["ansible-playbook", "-i", str(inventory), "site.yml"], cwd=ANSIBLE,
                               capture_output=True, text=True, timeout=2400)
        assert first.returncode == 0, first.stdout[-8000:] + first.stderr[-3000:]
        yield Site(base, hosts[ROOM], hosts[CLINIC], inventory, port, first.stdout)
    finally:
        for host in hosts.values():
            host.stop_services()
            subprocess.run(["umount", "-l", str(host.root / "proc")], check=False)
            # Only after the unmount: never walk a mounted /proc while deleting.
            if not (host.root / "proc" / "self").exists():
                shutil.rmtree(host.root, ignore_errors=True)


def test_room_has_its_user_software_models_config_and_key(site: Site) -> None:
    room = site.room
    assert recap(site.first_run, ROOM)["failed"] == 0
    assert room.run("getent", "passwd", "appliance").stdout.split(":")[6].strip() == "/usr/sbin/nologin"
    assert "audio" in room.run("id", "-nG", "appliance").stdout.split()
    where = room.run("/opt/appliance/.venv/bin/python", "-c", "import appliance; print(appliance.__file__)")
    assert where.stdout.startswith("/opt/appliance/.venv/lib/")
    check = room.run("/opt/appliance/.venv/bin/appliance", "config", "check", "/etc/appliance/appliance.toml")
    assert "OK" in check.stdout + check.stderr
    # Every model file matches the sha256 of the manifest built on the controller.
    room.run("/opt/appliance/.venv/bin/appliance", "models", "verify", "--dir", "/opt/appliance/models")
    for name in ("whisper-tiny.en", "silero-vad", "voicefilter-embedder"):
        assert (room.root / "opt/appliance/models" / name / "manifest.json").is_file()
    config = (room.root / "etc/appliance/appliance.toml").read_text()
    assert f'id = "{ROOM}"' in config and f'site = "{SITE}"' in config
    assert (room.root / "etc/hostname").read_text().strip() == ROOM
    # The key was made on the device and never copied: the controller holds only the request
    # and the certificate.
    key = room.root / "etc/appliance/pki/device.key"
    assert key.stat().st_mode & 0o077 == 0
    assert not list(site.pki.rglob("*.key")) or all(k.name == "ca.key" for k in site.pki.rglob("*.key"))
    subject = room.run("openssl", "x509", "-in", "/etc/appliance/pki/device.crt", "-noout", "-subject").stdout
    assert f"OU = {SITE}" in subject and f"CN = {ROOM}" in subject


def test_units_are_enabled_and_verify_in_their_rootfs(site: Site) -> None:
    for host, unit, wants in ((site.room, "appliance.service", "multi-user.target.wants"),
                              (site.clinic, "clinic-server.service", "multi-user.target.wants"),
                              (site.clinic, "mosquitto.service", "multi-user.target.wants")):
        # The link is absolute (/etc/systemd/system/...): it resolves inside the rootfs, not here.
        assert (host.root / "etc/systemd/system" / wants / unit).is_symlink(), f"{unit} not enabled"
    for host, unit in ((site.room, "appliance.service"), (site.clinic, "clinic-server.service")):
        installed = host.root / "etc/systemd/system" / unit
        assert installed.read_text() == (ROOT / "image/systemd" / unit).read_text()
        assert_verifies(installed, root=host.root)


def _seed_reviewed_visit(room: Host) -> None:
    """A finished visit queued for sending, written through the store's API as the daemon's user."""
    script = """
from appliance.config import load_config
from appliance.store import open_store
cfg = load_config('/etc/appliance/appliance.toml')
with open_store(cfg.store.path or cfg.paths.state_dir + '/sessions.db') as store:
    s = store.create_session('Provisioned Patient', cfg.device.room, 'Dr Test', cfg.device.id, cfg.device.site,
                             ['SOAP'], True)
    store.transition(s.id, 'recording', 'panel')
    store.add_segment(s.id, 0.0, 4.0, 'S1', 'The cough started three days ago.')
    store.transition(s.id, 'stopped', 'panel')
    store.enqueue(s.id, 'panel')
    print(s.id)
"""
    room.run("/opt/appliance/.venv/bin/python", "-c", script, user="appliance")


def test_units_start_from_their_installed_files_and_a_rooms_transcript_reaches_the_clinic(site: Site) -> None:
    clinic, room = site.clinic, site.room
    broker = clinic.start_broker()
    server = clinic.start_unit("clinic-server.service")
    (room.root / "var/lib/appliance").mkdir(exist_ok=True)
    room.run("chown", "appliance:appliance", "/var/lib/appliance")
    _seed_reviewed_visit(room)
    daemon = room.start_unit("appliance.service")
    try:
        def status_ok() -> bool:
            return room.run("/opt/appliance/.venv/bin/appliance", "--config", "/etc/appliance/appliance.toml",
                            "ctl", "status", user="appliance", check=False).returncode == 0
        wait_until(status_ok, 90, "the room daemon answering `appliance ctl status`", interval=1)

        def arrived() -> bool:
            out = clinic.run("/opt/clinic/.venv/bin/clinic", "--config", "/etc/clinic/clinic.toml", "sessions",
                             "list", user="clinic", check=False)
            return ROOM in out.stdout
        try:
            wait_until(arrived, 120, "the transcript at the clinic", interval=1)
        except TimeoutError:
            sync = room.run("/opt/appliance/.venv/bin/appliance", "--config", "/etc/appliance/appliance.toml",
                            "ctl", "status", user="appliance", check=False)
            raise AssertionError("no transcript at the clinic; room status:\n" + sync.stdout) from None
    finally:
        for proc, what in ((daemon, "room daemon"), (server, "clinic server"), (broker, "broker")):
            assert proc.poll() is None, f"{what} exited {proc.returncode}:\n{proc.stdout.read()[-3000:]}"
        room.stop_services()
        clinic.stop_services()


def test_revoked_and_unsigned_devices_are_refused_by_the_provisioned_broker(site: Site, tmp_path: Path) -> None:
    clinic, room = site.clinic, site.room
    creds = tmp_path / "room"
    creds.mkdir()
    for name in ("ca.crt", "device.crt", "device.key"):
        shutil.copy(room.root / "etc/appliance/pki" / name, creds / name)
    # An unsigned certificate with the same name: made here, signed by nobody.
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(creds / "self.key"), "-out", str(creds / "self.crt"), "-days", "2",
                    "-subj", f"/OU={SITE}/CN={ROOM}"], check=True, capture_output=True)

    def publish(cert: str, key: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["mosquitto_pub", "-h", "localhost", "-p", str(site.port), "--cafile",
                               str(creds / "ca.crt"), "--cert", str(creds / cert), "--key", str(creds / key),
                               "-t", f"scribe/{SITE}/{ROOM}/status", "-m", "{}", "-q", "1"],
                              capture_output=True, text=True, timeout=30)

    def with_broker(check: Callable[[], None]) -> None:
        clinic.start_broker()
        try:
            time.sleep(1.5)
            check()
        finally:
            clinic.stop_services()

    def before() -> None:
        assert publish("device.crt", "device.key").returncode == 0, "the provisioned room was refused"
        assert publish("self.crt", "self.key").returncode != 0, "an unsigned certificate was accepted"
    with_broker(before)

    revoked = site.playbook("revoke.yml", "-e", f"revoke_device={ROOM}", "-e", f"scribe_pki_dir={site.pki}")
    assert revoked.returncode == 0, revoked.stdout[-4000:]
    assert recap(revoked.stdout, CLINIC)["changed"] >= 1, changed_tasks(revoked.stdout)

    def after() -> None:
        assert publish("device.crt", "device.key").returncode != 0, "a revoked room was accepted"
    with_broker(after)


def test_second_run_changes_nothing_and_check_mode_works(site: Site) -> None:
    again = site.playbook("site.yml")
    assert again.returncode == 0, again.stdout[-4000:]
    for host in (ROOM, CLINIC):
        assert recap(again.stdout, host)["changed"] == 0, f"{host} not idempotent:\n" + changed_tasks(again.stdout)
    checked = site.playbook("site.yml", "--check", "--diff")
    assert checked.returncode == 0, checked.stdout[-4000:]
    for host in (ROOM, CLINIC):
        assert recap(checked.stdout, host)["changed"] == 0, changed_tasks(checked.stdout)


def test_a_bad_variable_fails_the_play_naming_the_key_and_keeps_the_old_config(site: Site) -> None:
    config = site.room.root / "etc/appliance/appliance.toml"
    before = config.read_text()
    bad = site.playbook("rooms.yml", "--tags", "appliance_config", "-e", "appliance_keep_days=-3")
    assert bad.returncode != 0
    assert "keep_days" in bad.stdout
    assert config.read_text() == before


# Last: it renames the room, as first boot of an image does.
def test_first_boot_enrolment_of_an_image_names_the_device_and_keeps_its_key(site: Site) -> None:
    room = site.room
    key_before = (room.root / "etc/appliance/pki/device.key").read_bytes()
    (room.root / "boot/firmware").mkdir(parents=True, exist_ok=True)
    (room.root / "boot/firmware/scribe-device-id").write_text("room-99\n")
    shutil.copy(ROOT / "image/firstboot/scribe-enrol.sh", room.root / "usr/local/sbin/scribe-enrol")
    out = room.run("/usr/local/sbin/scribe-enrol")
    assert "room-99" in out.stdout
    assert 'id = "room-99"' in (room.root / "etc/appliance/appliance.toml").read_text()
    assert (room.root / "etc/hostname").read_text().strip() == "room-99"
    assert (room.root / "etc/appliance/pki/device.key").read_bytes() == key_before  # never replaced
    bad = room.root / "boot/firmware/scribe-device-id"
    bad.write_text("room 99/x\n")
    refused = room.run("/usr/local/sbin/scribe-enrol", check=False)
    assert refused.returncode == 2 and "may use only" in refused.stderr
