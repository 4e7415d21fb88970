"""A full disk during a visit: said out loud, nothing transcribed is lost, Stop still works.

The real daemon keeps its state directory on a small real filesystem (a tmpfs mounted with
size=); the test fills it with a file during the visit and deletes the file later.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.config import parse_config
from appliance.daemon.controller import ControlError, SessionController
from appliance.daemon.room import build_controller
from appliance.daemon.storage import STORAGE_FULL
from appliance.speech.pipeline import FinalSegment
from appliance.store import State, open_store
from clinic.server import ClinicServer
from tests.broker import Broker, clinic_config, make_pki, sync_toml, wait_until
from tests.daemon import DaemonProcess, free_port, offline_utterances, write_config, write_visit_wav

pytestmark = pytest.mark.slow


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB filesystem of its own (root only: mount)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(directory: Path, leave_bytes: int = 0) -> Path:
    """Write a file until only `leave_bytes` (about) are free on the filesystem of `directory`."""
    filler = directory / "filler"
    with open(filler, "ab") as f:
        while True:
            st = os.statvfs(directory)
            free = st.f_bavail * st.f_frsize - leave_bytes
            if free <= 0:
                break
            try:
                f.write(b"\0" * min(free, 1 << 20))
                f.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    return filler


def clinic_alerts(clinic: ClinicServer) -> list[str]:
    """Alert messages of dev-a's last status message, as the clinic stored it."""
    return [a["message"] for a in (clinic.repo.device_status("dev-a") or {}).get("alerts", [])]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def test_full_disk_during_a_visit_keeps_every_utterance(tmp_path: Path, small_fs: Path) -> None:
    wav = tmp_path / "visit.wav"
    pcm, _ = write_visit_wav(wav)
    expected = offline_utterances(pcm)
    pki = make_pki(tmp_path / "pki")
    broker = Broker(pki, tmp_path / "broker").start()
    clinic = ClinicServer(clinic_config(pki, broker, tmp_path / "clinic.db")).start()
    port = free_port()
    state = small_fs / "state"
    extra = sync_toml(pki, broker, "dev-a") + f"[panel]\nport = {port}\n[diarize]\nenabled = false\n"
    config = write_config(tmp_path, wav, extra=extra)
    text = config.read_text()  # the state directory on the small filesystem; Start needs 0.5 MB free there
    config.write_text(text.replace(f'state_dir = "{tmp_path / "state"}"', f'state_dir = "{state}"')
                      .replace("status_interval_s = 0.2\n", "status_interval_s = 0.2\nmin_free_mb = 0.5\n"))
    try:
        with DaemonProcess(config) as daemon:
            # Before Start: too little room is refused, by name.
            filler = fill(small_fs, leave_bytes=100_000)
            reply = daemon.ctl("start", name="JD")
            assert not reply["ok"] and "storage is full" in reply["error"] and "min_free_mb" in reply["error"], reply
            assert daemon.status()["storage"]["state"] == "low"
            filler.unlink()

            reply = daemon.ctl("start", name="JD", templates=["SOAP"], consent=True)
            assert reply["ok"], reply
            sid = reply["session"]["id"]
            daemon.wait_for(lambda s: s["segments"] >= 1, timeout=30, what="first utterance stored")
            filler = fill(small_fs)  # the disk is full from here on

            st = daemon.wait_for(lambda s: s["storage"]["held"] >= 2, timeout=40, what="utterances held in RAM")
            stored_before = st["segments"]
            assert st["storage"]["state"] == "full" and st["storage"]["message"] == STORAGE_FULL
            assert st["state"] == "recording"  # the visit goes on
            panel = get_json(f"http://127.0.0.1:{port}/status")
            assert panel["storage"]["message"] == STORAGE_FULL
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
                assert STORAGE_FULL in r.read().decode()  # the banner is in the page itself
            wait_until(lambda: STORAGE_FULL in clinic_alerts(clinic), 20, "status topic says storage full")
            assert {"key": "storage", "message": STORAGE_FULL} in [
                {k: a[k] for k in ("key", "message")} for a in daemon.status()["alerts"]]

            daemon.wait_for(lambda s: s["capture"]["state"] == "stopped", timeout=60, what="end of the visit")
            daemon.wait_for(lambda s: s["segments"] + s["storage"]["held"] >= len(expected), timeout=20,
                            what="every utterance transcribed")
            reply = daemon.ctl("stop")
            assert not reply["ok"] and STORAGE_FULL in reply["error"] and "Recording has ended" in reply["error"]
            st = daemon.status()
            assert st["state"] == "stopping" and st["capture"] is None  # the microphone is closed
            assert st["segments"] == stored_before and st["storage"]["held"] == len(expected) - stored_before

            filler.unlink()  # space freed: everything is written and the Stop completes by itself
            st = daemon.wait_for(lambda s: s["state"] == "idle", timeout=20, what="stop completed")
            assert st["storage"]["state"] == "ok" and st["storage"]["held"] == 0
            wait_until(lambda: not clinic_alerts(clinic), 20, "status topic: storage alert cleared")
        with open_store(str(state / "sessions.db")) as store:
            assert store.integrity_check() == ["ok"]
            assert store.get_session(sid).state is State.STOPPED
            got = store.read_transcript(sid, actor="test", reason="full disk check")
            assert len(got) == len(expected)  # none lost
            for g, u in zip(got, expected, strict=True):  # in spoken order, each utterance once
                assert abs(g.start - u.start) < 0.05 and abs(g.end - u.end) < 0.05
    finally:
        with contextlib.suppress(Exception):
            clinic.stop()
        broker.stop()


def small_controller(tmp_path: Path, small_fs: Path, **daemon: object) -> SessionController:
    """The daemon's controller (real store on the small filesystem, file capture), no daemon."""
    wav = tmp_path / "visit.wav"
    write_visit_wav(wav)
    return build_controller(parse_config({
        "paths": {"state_dir": str(small_fs / "state")},
        "capture": {"source": "file", "file": str(wav), "realtime": True},
        "daemon": {"control_socket": str(tmp_path / "ctl.sock"), "min_free_mb": 0.5, **daemon},
        "asr": {"engine": "none"}, "vad": {"engine": "energy"},
    }))


def test_at_the_ram_limit_the_microphone_pauses_instead_of_dropping_text(tmp_path: Path, small_fs: Path) -> None:
    c = small_controller(tmp_path, small_fs, held_segments_max=10)
    try:
        sid = c.start(name="JD", actor="test").id
        filler = fill(small_fs)
        # What recognition hands over (the pipeline's on_segment), 12 utterances on a full disk.
        said = [FinalSegment(sid, i * 2.0, i * 2.0 + 1.5, f"utterance number {i}") for i in range(12)]
        for seg in said:
            c.visit.pipeline.on_segment(seg)
        st = c.snapshot().storage
        assert st is not None and st["held"] == 12 and "microphone is paused" in st["message"]
        heard = c.snapshot().elapsed_s
        time.sleep(1.0)
        assert c.snapshot().elapsed_s == heard  # nothing more is heard while the text waits
        filler.unlink()
        c.retry_storage()
        assert c.snapshot().storage["held"] == 0
        time.sleep(1.0)
        assert c.snapshot().elapsed_s > heard  # listening again
        got = c.store.read_transcript(sid, actor="test", reason="ram limit check")
        assert [g.text for g in got] == [s.text for s in said]  # all of them, in order
        c.stop(actor="test")
    finally:
        c.store.close()


def test_pause_resume_and_stop_on_a_full_disk_reach_the_store_in_order(tmp_path: Path, small_fs: Path) -> None:
    c = small_controller(tmp_path, small_fs)
    try:
        sid = c.start(name="JD", actor="test").id
        filler = fill(small_fs)
        assert c.pause(actor="test").state == "paused"  # the room sees the pause at once …
        assert c.snapshot().state == "paused" and c.snapshot().storage["state"] == "full"
        assert c.resume(actor="test").state == "recording"
        c.visit.pipeline.on_segment(FinalSegment(sid, 1.0, 2.0, "said after the resume"))
        with pytest.raises(ControlError, match=r"Storage full .* Recording has ended"):
            c.stop(actor="test")
        assert c.snapshot().state == "stopping" and c.snapshot().capture is None
        with pytest.raises(ControlError, match="Storage full"):
            c.stop(actor="test")  # asked again: same answer, nothing lost
        assert c.store.get_session(sid).state is State.RECORDING  # … the store once there is room
        filler.unlink()
        c.retry_storage()
        assert c.snapshot().state == "idle" and c.session is None
        assert c.store.get_session(sid).state is State.STOPPED
        moves = [e.action for e in c.store.audit_events(sid) if e.action.startswith("state:")]
        assert moves == ["state:idle->recording", "state:recording->paused", "state:paused->recording",
                         "state:recording->stopped"]
        got = c.store.read_transcript(sid, actor="test", reason="full disk check")
        assert [g.text for g in got] == ["said after the resume"]
    finally:
        c.store.close()
