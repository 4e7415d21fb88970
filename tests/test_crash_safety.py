"""A real daemon process killed mid-visit loses at most the utterance in flight.

The daemon replays a spoken visit at real time; the test SIGKILLs it while it records,
restarts it, and checks against an offline run of the same VAD that every utterance that
had ended before the kill is stored, that the visit comes back paused + interrupted, and
that it can then be stopped and sent.
"""

from __future__ import annotations

import signal
import time

import pytest

from appliance.config.schema import VadConfig
from appliance.store import open_store
from tests.daemon import DaemonProcess, offline_utterances, write_config, write_visit_wav

pytestmark = pytest.mark.slow

# An utterance is final once min_silence_ms of pause follows it; allow the worker a moment.
SETTLE_S = VadConfig().min_silence_ms / 1000 + 0.5


def test_sigkill_mid_visit_loses_at_most_the_utterance_in_flight(tmp_path):
    wav = tmp_path / "visit.wav"
    pcm, _ = write_visit_wav(wav)
    expected = offline_utterances(pcm)
    cfg = write_config(tmp_path, wav)
    with DaemonProcess(cfg) as d:
        reply = d.ctl("start", name="JD", templates=["SOAP"], consent=True)
        assert reply["ok"], reply
        sid = reply["session"]["id"]
        in_flight = expected[4]  # kill while the fifth utterance is being spoken
        st = d.wait_for(lambda s: s["elapsed_s"] > in_flight.start + 0.8, timeout=40, what="fifth utterance")
        elapsed_at_kill = st["elapsed_s"]
        assert elapsed_at_kill < in_flight.end
        d.kill(signal.SIGKILL)

    store = open_store(str(tmp_path / "state" / "sessions.db"))
    assert store.integrity_check() == ["ok"]
    stored = store.read_transcript(sid, actor="test", reason="crash check")
    must_have = [u for u in expected if u.end <= elapsed_at_kill - SETTLE_S]
    assert len(must_have) >= 4
    for u in must_have:
        assert any(abs(g.start - u.start) < 0.05 and abs(g.end - u.end) < 0.05 for g in stored), (
            f"utterance {u.start:.2f}–{u.end:.2f} ended before the kill but was lost; stored: "
            f"{[(g.start, g.end) for g in stored]}"
        )
    # nothing invented: every stored segment is one of the real utterances
    assert all(any(abs(g.start - u.start) < 0.05 for u in expected) for g in stored)
    store.close()

    with DaemonProcess(cfg) as d:
        st = d.status()
        assert st["session_id"] == sid and st["state"] == "paused" and st["interrupted"] is True
        reply = d.ctl("stop")
        assert reply["ok"] and reply["session"]["state"] == "stopped", reply
        assert d.status()["state"] == "idle"

    store = open_store(str(tmp_path / "state" / "sessions.db"))
    s = store.get_session(sid)
    assert s.state == "stopped" and s.interrupted
    assert s.recorded_seconds >= elapsed_at_kill - 1.5  # kept current while recording
    item = store.enqueue(sid, actor="test")  # "can be stopped and sent"
    assert store.get_session(sid).state == "queued" and item.revision == s.revision
    assert len(store.read_transcript(sid, actor="test", reason="check")) == len(stored)
    store.close()


def test_sigterm_stores_the_utterance_in_flight_and_exits_within_10s(tmp_path):
    wav = tmp_path / "visit.wav"
    pcm, _ = write_visit_wav(wav, gap_s=1.5)
    expected = offline_utterances(pcm)
    cfg = write_config(tmp_path, wav)
    with DaemonProcess(cfg) as d:
        sid = d.ctl("start", name="AB")["session"]["id"]
        # wait until the daemon is in the middle of the third utterance
        third = expected[2]
        st = d.wait_for(lambda s: s["elapsed_s"] > third.start + 0.8, timeout=40, what="third utterance")
        assert st["elapsed_s"] < third.end
        took = d.kill(signal.SIGTERM)
        assert d.proc is not None and d.proc.returncode == 0, d.log.read_text()
    assert took < 10.0
    store = open_store(str(tmp_path / "state" / "sessions.db"))
    stored = store.read_transcript(sid, actor="test", reason="sigterm check")
    assert len(stored) == 3, [(g.start, g.end) for g in stored]
    last = stored[-1]
    assert abs(last.start - third.start) < 0.05  # the cut-off utterance was kept, up to the stop
    assert st["elapsed_s"] - 0.2 <= last.end <= third.end + 0.05
    assert store.get_session(sid).state == "paused"
    store.close()


def test_a_database_locked_for_a_while_does_not_stop_the_daemon(tmp_path):
    """Another process (a backup, a panel request gone slow) holds the database past the busy
    timeout: the daemon keeps recording and stores what it heard once the lock is gone."""
    import sqlite3

    wav = tmp_path / "visit.wav"
    write_visit_wav(wav)
    cfg = write_config(tmp_path, wav)
    with DaemonProcess(cfg) as d:
        assert d.ctl("start", name="LOCK")["ok"]
        d.wait_for(lambda s: s["segments"] >= 1, timeout=30, what="a first segment")
        blocker = sqlite3.connect(str(tmp_path / "state" / "sessions.db"), timeout=1)
        blocker.execute("BEGIN EXCLUSIVE")
        time.sleep(7.0)  # longer than the store's 5 s busy timeout
        blocker.rollback()
        blocker.close()
        assert d.proc is not None and d.proc.poll() is None, d.log.read_text()[-3000:]
        st = d.wait_for(lambda s: s["segments"] >= 4, timeout=40, what="segments after the lock")
        assert st["state"] == "recording"
        assert d.ctl("stop")["ok"]
