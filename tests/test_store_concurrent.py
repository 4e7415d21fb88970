"""Other processes reading and writing the device database while the daemon records and flushes.

SQLite's locks are POSIX locks, owned by the process: closing *any* descriptor of a database
file drops every lock the process holds on it. If the store opened its own files from Python
(to set their modes), the daemon lost its lock on the -shm file; the next process to open the
database thought it was alone, reset the shared memory under the daemon's mapping, and the
daemon died with SIGBUS ("Fatal Python error: Bus error") or failed commits with "locking protocol".
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.store import State, open_store
from clinic.server import ClinicServer
from tests.broker import (
    Broker,
    Pki,
    assert_same_at_clinic,
    clinic_config,
    make_finished_sessions,
    make_pki,
    sync_toml,
    wait_until,
)
from tests.daemon import DaemonProcess, offline_utterances, write_config, write_visit_wav
from tests.speech import RATE


def locked_inodes(pid: int) -> set[int]:
    """Inodes on which `pid` holds a POSIX lock, from /proc/locks."""
    inodes = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields:  # a waiter, not a holder
            continue
        if fields[1] == "POSIX" and fields[4] == str(pid):
            inodes.add(int(fields[5].split(":")[2]))
    return inodes


def test_opening_an_existing_database_keeps_sqlites_locks(tmp_path: Path) -> None:
    """The restart case: the database and its -shm exist, so the opening touched them."""
    path = tmp_path / "sessions.db"
    first = open_store(str(path))
    first.create_session("AB", "exam-1", "Dr A", "dev", "site")
    first.close()
    store = open_store(str(path))
    other = open_store(str(path))  # a second store in the same process (the CLI and tests do this)
    try:
        store.list_sessions()
        held = locked_inodes(os.getpid())
        assert os.stat(f"{path}-shm").st_ino in held, "the process lost its lock on the -shm file"
        assert os.stat(path).st_ino in held, "the process lost its lock on the database file"
    finally:
        other.close()
        store.close()


def _loop(stop: threading.Event, errors: list[str], name: str, step: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        n = 0
        while not stop.is_set():
            try:
                step()
            except Exception as exc:  # collected: the test reports every failure, not the first
                errors.append(f"{name} #{n}: {exc}")
            n += 1
    return run


def _proc(args: list[str]) -> Callable[[], None]:
    def step() -> None:
        out = subprocess.run(args, capture_output=True, text=True, timeout=60)
        # A reader that meets a busy database may fail and try again; a crash of the daemon is what we test.
        if out.returncode != 0 and "locked" not in out.stderr and "busy" not in out.stderr:
            raise RuntimeError(out.stderr.strip()[-300:])
    return step


@pytest.mark.slow
def test_daemon_survives_readers_and_writers_in_other_processes(tmp_path: Path) -> None:
    pki: Pki = make_pki(tmp_path / "pki")
    broker = Broker(pki, tmp_path / "broker").start()
    db = tmp_path / "state" / "sessions.db"
    store = open_store(str(db))
    queued = make_finished_sessions(store, 150, segments=30, bulk=True)
    store.close()  # no connection of the test's own may hold the shared memory for the daemon
    wav = tmp_path / "visit.wav"
    pcm, _ = write_visit_wav(wav)
    expected = offline_utterances(pcm)
    extra = (sync_toml(pki, broker, "dev-a", max_in_flight=4)
             + "[panel]\nenabled = false\n[diarize]\nenabled = false\n")
    config = write_config(tmp_path, wav, extra=extra)
    clinic = ClinicServer(clinic_config(pki, broker, tmp_path / "clinic.db")).start()
    stop, errors = threading.Event(), []
    monitor = ("import sys\nfrom appliance.store import open_store\n"
               "s = open_store(sys.argv[1], busy_timeout=30)\n"
               "for i in range(20):\n    s.audit('monitor', 'probe')\n    s.list_sessions()\ns.close()\n")
    hammers = [
        ("sqlite3 -readonly", _proc(["sqlite3", "-readonly", "-cmd", ".timeout 30000", str(db),
                                     "SELECT count(*) FROM segments; SELECT state, count(*) FROM sessions "
                                     "GROUP BY state;"])),
        ("read-write", _proc([sys.executable, "-c", monitor, str(db)])),
        ("sessions list", _proc([sys.executable, "-m", "appliance", "--config", str(config), "sessions", "list"])),
    ]
    threads = [threading.Thread(target=_loop(stop, errors, n, f), daemon=True) for n, f in hammers]
    try:
        with DaemonProcess(config) as daemon:
            for t in threads:
                t.start()
            reply = daemon.ctl("start", name="JD", templates=["SOAP"], consent=True)
            assert reply["ok"], reply
            sid = reply["session"]["id"]
            duration = len(pcm) / RATE
            daemon.wait_for(lambda s: s["capture"]["state"] == "stopped", timeout=duration + 60,
                            what="end of the visit")
            wait_until(lambda: daemon.status()["segments"] >= len(expected), 20, "last utterance stored")
            assert daemon.ctl("stop")["ok"]
            wait_until(lambda: clinic.repo.count() >= len(queued), 120, "flush finished")
            stop.set()
            for t in threads:
                t.join(120)
            assert daemon.proc is not None and daemon.proc.poll() is None, daemon.log.read_text()[-3000:]
            log_text = daemon.log.read_text()
            assert "Fatal Python error" not in log_text and "locking protocol" not in log_text, log_text[-3000:]
        assert not errors, errors[:5]
        with open_store(str(db)) as store:
            assert store.integrity_check() == ["ok"]
            assert store.get_session(sid).state is State.STOPPED
            stored = store.read_transcript(sid, actor="test", reason="concurrency check")
            assert len(stored) == len(expected)  # every utterance of the visit, none lost
            assert all(store.get_session(i).state is State.SYNCED for i in queued)
            assert sorted(r.session_id for r in clinic.repo.list()) == sorted(queued)  # none lost, none twice
            for i in queued[::15]:
                assert_same_at_clinic(store, clinic.repo, i, 1)
            assert any(e.actor == "monitor" for e in store.audit_events())  # the writer's rows are kept too
    finally:
        stop.set()
        clinic.stop()
        broker.stop()
