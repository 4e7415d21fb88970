"""The daemon forbids its own core dumps: a crash must not write the RAM audio buffer to disk."""

from __future__ import annotations

import resource
import signal
from pathlib import Path

import pytest

from tests.daemon import DaemonProcess, write_config, write_visit_wav

pytestmark = pytest.mark.slow


def allow_cores() -> None:
    """In the child, before exec: the most permissive start a shell or unit could give it."""
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def core_limit(pid: int) -> tuple[str, str]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max core file size"):
            soft, hard = line.split()[4:6]
            return soft, hard
    raise AssertionError("no core limit in /proc/PID/limits")


def test_daemon_disables_core_dumps_and_a_crash_writes_none(tmp_path: Path) -> None:
    if Path("/proc/sys/kernel/core_pattern").read_text().strip().startswith("|"):
        pytest.skip("core_pattern pipes cores to a collector; this test looks for a core file")
    if resource.getrlimit(resource.RLIMIT_CORE)[1] != resource.RLIM_INFINITY:
        pytest.skip("the hard core limit is already 0 here: a crash could not show a core either way")
    wav = tmp_path / "visit.wav"
    write_visit_wav(wav)
    cwd = tmp_path / "cwd"  # core_pattern "core": a dump lands in the crashing process's directory
    cwd.mkdir()
    daemon = DaemonProcess(write_config(tmp_path, wav), cwd=cwd, preexec_fn=allow_cores).start()
    try:
        assert daemon.proc is not None
        assert core_limit(daemon.proc.pid) == ("0", "0")
        assert daemon.status()["core_dumps_disabled"] is True  # prctl(PR_GET_DUMPABLE) read back in the daemon
        assert daemon.ctl("start", name="JD")["ok"]  # audio in RAM now
        daemon.wait_for(lambda s: s["elapsed_s"] > 2.0, what="recording")
        daemon.kill(signal.SIGSEGV)
        assert daemon.proc.returncode == -signal.SIGSEGV
    finally:
        daemon.__exit__()
    cores = [p for p in tmp_path.rglob("core*") if p.is_file()]
    assert not cores, f"core dump written: {cores}"
