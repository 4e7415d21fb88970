"""Pause means nothing is captured: checked by instrumenting the sink and by the audio content.

The test file is a ramp whose sample value encodes its own frame index, so the first
sample of any delivered block says exactly where in the file it came from.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from appliance.capture import Capture, CapturedBlock
from appliance.config.schema import CaptureConfig

RATE = 16000
SCALE = 0.9  # ramp from 0 to SCALE over the file


def ramp_file(path: Path, seconds: float) -> int:
    n = int(seconds * RATE)
    sf.write(path, (np.arange(n) / n * SCALE).astype(np.float32), RATE, subtype="FLOAT")
    return n


def frame_of(block: CapturedBlock, n: int) -> int:
    return round(float(block.raw[0, 0]) / SCALE * n)


class PauseWatcher:
    """A sink that records blocks and flags any that arrive while the test says "paused"."""

    def __init__(self) -> None:
        self.blocks: list[CapturedBlock] = []
        self.during_pause: list[CapturedBlock] = []
        self.paused = threading.Event()
        self.lock = threading.Lock()

    def __call__(self, block: CapturedBlock) -> None:
        with self.lock:
            (self.during_pause if self.paused.is_set() else self.blocks).append(block)

    def count(self) -> int:
        with self.lock:
            return len(self.blocks) + len(self.during_pause)

    def delivered_seconds(self) -> float:
        with self.lock:
            return sum(len(b.mono16k) for b in self.blocks) / RATE


def wait_for(pred, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_fast_mode_pause_stops_delivery_and_resume_continues_in_place(tmp_path: Path):
    path = tmp_path / "ramp.wav"
    n = ramp_file(path, 30.0)  # long enough that fast replay is still going when we pause
    sink = PauseWatcher()
    cap = Capture(CaptureConfig(source="file", file=str(path), realtime=False, block_ms=20), sink)
    cap.start()
    wait_for(lambda: sink.count() >= 20, 5)
    cap.pause()
    sink.paused.set()
    n_paused = sink.count()
    assert cap.status().state == "paused"
    time.sleep(0.3)
    assert sink.count() == n_paused
    sink.paused.clear()
    cap.resume()
    assert cap.wait_finished(20)
    cap.stop()
    assert sink.during_pause == []
    frames = [frame_of(b, n) for b in sink.blocks]
    steps = np.diff(frames)
    # Contiguous, except that a block being read the instant pause() ran may be dropped.
    assert set(steps[:-1]) <= {320, 640}, sorted(set(steps))
    assert list(steps).count(640) <= 1
    assert frames[0] == 0 and frames[-1] + len(sink.blocks[-1].raw) == n


@pytest.mark.slow
def test_realtime_pause_skips_the_stretch_spoken_while_paused(tmp_path: Path):
    path = tmp_path / "ramp.wav"
    n = ramp_file(path, 4.0)
    sink = PauseWatcher()
    cap = Capture(CaptureConfig(source="file", file=str(path), realtime=True, block_ms=32), sink)
    t0 = time.monotonic()
    cap.start()
    wait_for(lambda: sink.delivered_seconds() >= 0.8, 3)
    cap.pause()
    sink.paused.set()
    t_pause = time.monotonic()
    n_paused = sink.count()
    time.sleep(1.0)
    assert sink.count() == n_paused and cap.status().state == "paused"
    sink.paused.clear()
    t_resume = time.monotonic()
    cap.resume()
    wait_for(lambda: sink.count() >= n_paused + 10, 3)
    cap.stop()
    assert sink.during_pause == []

    before, after = sink.blocks[:n_paused], sink.blocks[n_paused:]
    first = after[0]
    # Stream time excludes the pause: it carries on from what was delivered...
    assert first.t == pytest.approx(sum(len(b.mono16k) for b in before) / RATE)
    assert first.t == pytest.approx(t_pause - t0, abs=0.1)
    # ...while the file moved on with the wall clock: the paused stretch was never delivered.
    resumed_at = frame_of(first, n) / RATE
    assert resumed_at == pytest.approx(t_resume - t0, abs=0.1)
    assert resumed_at - first.t == pytest.approx(t_resume - t_pause, abs=0.1)
    last_before = frame_of(before[-1], n) + len(before[-1].raw)
    assert frame_of(first, n) - last_before > 0.9 * RATE
    # Within each stretch the audio is contiguous.
    for part in (before, after):
        frames = [frame_of(b, n) for b in part]
        assert set(np.diff(frames)) == {512}


def test_pause_and_stop_are_safe_in_any_order(tmp_path: Path):
    path = tmp_path / "ramp.wav"
    ramp_file(path, 1.0)
    cap = Capture(CaptureConfig(source="file", file=str(path), realtime=True), lambda b: None)
    cap.pause()  # not started: nothing to do
    cap.resume()
    cap.stop()
    assert cap.status().state == "stopped"
    cap.start()
    cap.pause()
    cap.pause()
    assert cap.status().state == "paused"
    cap.stop()
    cap.stop()
    assert cap.status().state == "stopped"
    assert not cap.wait_finished(0.1)
