"""The file source through the whole capture stage: replay, channel choice, errors, pause."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from appliance.capture import Capture, CapturedBlock, CaptureError
from appliance.config.schema import CaptureConfig
from tests.sinks import Recorder


def file_cfg(path: Path, **kw) -> CaptureConfig:
    return CaptureConfig(source="file", file=str(path), **kw)


def replay(cfg: CaptureConfig, timeout: float = 20.0) -> tuple[list[CapturedBlock], Capture]:
    rec = Recorder()
    cap = Capture(cfg, rec)
    cap.start()
    try:
        assert cap.wait_finished(timeout)
    finally:
        cap.stop()
    return rec.blocks, cap


def tones(freqs: list[float], seconds: float, rate: int, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.stack([amp * np.sin(2 * np.pi * f * t) for f in freqs], axis=1).astype(np.float32)


def spectrum_db(x: np.ndarray, rate: int, freq: float) -> float:
    """Level of ``freq`` in ``x`` relative to the strongest component, in dB."""
    mag = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    bins = np.fft.rfftfreq(len(x), 1 / rate)
    k = int(np.argmin(np.abs(bins - freq)))
    return float(20 * np.log10(mag[max(k - 2, 0):k + 3].max() / mag.max()))


@pytest.mark.parametrize("fmt", ["WAV", "FLAC"])
@pytest.mark.parametrize(("channels", "rate"), [(1, 16000), (4, 48000), (4, 44100), (1, 22050)])
def test_fast_replay_delivers_the_whole_file(tmp_path: Path, fmt: str, channels: int, rate: int):
    rng = np.random.default_rng(channels)
    seconds = 1.3
    data = (rng.uniform(-0.5, 0.5, (int(seconds * rate), channels))).astype(np.float32)
    path = tmp_path / f"in.{fmt.lower()}"
    sf.write(path, data, rate, format=fmt, subtype="PCM_16")
    expected = sf.read(path, dtype="float32", always_2d=True)[0]

    blocks, cap = replay(file_cfg(path, realtime=False, block_ms=32))

    raw = np.concatenate([b.raw for b in blocks])
    assert raw.dtype == np.float32 and raw.shape == expected.shape
    np.testing.assert_array_equal(raw, expected)  # nothing lost, repeated or reordered
    assert {b.rate for b in blocks} == {rate}
    assert all(len(b.raw) == round(rate * 0.032) for b in blocks[:-1])
    mono = np.concatenate([b.mono16k for b in blocks])
    assert mono.dtype == np.float32 and mono.ndim == 1
    assert len(mono) == -(-len(data) * 16000 // rate)  # the resampler's tail is flushed at the end
    assert len(mono) == pytest.approx(seconds * 16000, abs=2)
    ts = [b.t for b in blocks]
    assert ts[0] == 0.0
    for prev, cur in itertools.pairwise(blocks):
        assert cur.t == pytest.approx(prev.t + len(prev.mono16k) / 16000, abs=1e-12)
        assert cur.t > prev.t
    assert cap.status_time() == pytest.approx(seconds, abs=1e-3)
    st = cap.status()
    assert (st.state, st.device, st.rate, st.channels) == ("stopped", path.name, rate, channels)


@pytest.mark.slow
def test_realtime_replay_takes_as_long_as_the_file(tmp_path: Path):
    path = tmp_path / "mono.flac"
    sf.write(path, tones([440.0], 1.0, 16000)[:, 0], 16000)
    arrivals: list[float] = []
    rec = Recorder()

    def sink(block: CapturedBlock) -> None:
        arrivals.append(time.monotonic())
        rec(block)

    cap = Capture(file_cfg(path, realtime=True, block_ms=50), sink)
    t0 = time.monotonic()
    cap.start()
    assert cap.status().state == "ok"
    assert not cap.wait_finished(0.5)  # half-way through the file: still playing
    assert cap.wait_finished(3.0)
    elapsed = time.monotonic() - t0
    cap.stop()
    assert 0.95 <= elapsed < 1.4, elapsed
    assert len(rec.blocks) == 20
    # Paced like a device: block k arrives once its audio has been "spoken".
    for k, at in enumerate(arrivals):
        assert at - t0 >= (k + 1) * 0.05 - 0.01, (k, at - t0)
    assert sum(len(b.mono16k) for b in rec.blocks) == 16000
    assert cap.status().state == "stopped"


@pytest.mark.parametrize("fmt", ["WAV", "FLAC"])
def test_asr_channels_pick_the_right_channels(tmp_path: Path, fmt: str):
    freqs = [440.0, 1000.0, 2500.0, 5000.0]
    path = tmp_path / f"four.{fmt.lower()}"
    sf.write(path, tones(freqs, 1.0, 48000), 48000, format=fmt)

    def heard(asr_channels: tuple[int, ...]) -> list[float]:
        blocks, _ = replay(file_cfg(path, realtime=False, asr_channels=asr_channels))
        mono = np.concatenate([b.mono16k for b in blocks])
        return [spectrum_db(mono, 16000, f) for f in freqs]

    only2 = heard((2,))
    assert only2[2] == pytest.approx(0.0, abs=0.5)
    assert max(only2[0], only2[1], only2[3]) < -60
    pair = heard((1, 3))
    assert pair[1] > -1 and pair[3] > -1 and max(pair[0], pair[2]) < -60
    everything = heard(())
    assert min(everything) > -1.5


def test_levels_clipping_and_silence_while_replaying(tmp_path: Path):
    rate = 16000
    loud = np.zeros((rate, 3), np.float32)
    loud[:, 0] = tones([300.0], 1.0, rate, amp=0.5)[:, 0]  # RMS -9 dBFS
    loud[:, 1] = np.where(tones([300.0], 1.0, rate)[:, 0] >= 0, 1.0, -1.0)  # clipped square, 0 dBFS
    loud[:, 2] = 0.01  # DC at -40 dBFS
    quiet = np.zeros((17 * rate, 3), np.float32)  # 17 s of a dead microphone
    path = tmp_path / "levels.wav"
    sf.write(path, np.concatenate([loud, quiet]), rate, subtype="FLOAT")
    cfg = file_cfg(path, realtime=False, silence_alert_seconds=15.0, clip_dbfs=-0.5, silence_dbfs=-70.0)
    seen = {}
    cap: Capture | None = None

    def sink(block: CapturedBlock) -> None:  # status as the panel would see it at that moment
        assert cap is not None
        end = block.t + len(block.mono16k) / 16000
        for mark in (0.9, 2.0, 3.9, 16.5):
            if block.t < mark <= end:
                seen[mark] = cap.status()

    cap = Capture(cfg, sink)
    cap.start()
    assert cap.wait_finished(10)
    cap.stop()
    st = seen[0.9]
    assert st.state == "ok"
    assert st.levels_dbfs == pytest.approx((-9.03, 0.0, -40.0), abs=0.2)
    assert st.peak_dbfs == pytest.approx((-6.02, 0.0, -40.0), abs=0.2)
    assert st.clipping and not st.muted_suspected and st.silent_seconds == 0.0
    assert "too loud" in st.message
    assert seen[2.0].levels_dbfs == (-120.0, -120.0, -120.0)
    assert seen[2.0].clipping  # a clip stays flagged for a while so someone can see it...
    assert not seen[3.9].clipping  # ...but not forever
    assert seen[3.9].silent_seconds == pytest.approx(2.9, abs=0.05)
    st = seen[16.5]
    assert st.silent_seconds == pytest.approx(15.5, abs=0.05)
    assert st.muted_suspected and "muted" in st.message


def test_missing_file_names_the_path(tmp_path: Path):
    path = tmp_path / "nowhere" / "visit.wav"
    cap = Capture(file_cfg(path), lambda b: None)
    with pytest.raises(CaptureError, match="not found") as err:
        cap.start()
    assert str(path) in str(err.value)
    assert cap.status().state == "error" and str(path) in cap.status().message
    cap.stop()
    cap.stop()


def test_broken_wav_names_the_path(tmp_path: Path):
    path = tmp_path / "broken.wav"
    path.write_bytes(b"this is not audio at all " * 40)
    with pytest.raises(CaptureError) as err:
        Capture(file_cfg(path), lambda b: None).start()
    assert str(path) in str(err.value)
    assert "cannot read audio file" in str(err.value)


def test_asr_channel_that_the_file_lacks_is_an_error(tmp_path: Path):
    path = tmp_path / "stereo.wav"
    sf.write(path, tones([440.0, 880.0], 0.2, 16000), 16000)
    with pytest.raises(CaptureError, match=r"asr_channels \[2\].*2 channel"):
        Capture(file_cfg(path, asr_channels=(2,)), lambda b: None).start()


def test_empty_file_setting_is_an_error():
    with pytest.raises(CaptureError, match=r"capture\.file is empty"):
        Capture(CaptureConfig(source="file"), lambda b: None).start()


def test_a_failing_sink_puts_capture_in_error(tmp_path: Path):
    path = tmp_path / "a.wav"
    sf.write(path, tones([440.0], 0.5, 16000)[:, 0], 16000)

    def sink(block: CapturedBlock) -> None:
        if block.t > 0.1:
            raise ValueError("downstream bug")

    cap = Capture(file_cfg(path, realtime=False), sink)
    cap.start()
    assert cap.wait_finished(5) is False  # the reader ended without delivering the whole file
    st = cap.status()
    assert st.state == "error" and isinstance(cap.error, ValueError)
    cap.stop()
    assert cap.status().state == "error"


def test_blocks_are_read_only(tmp_path: Path):
    path = tmp_path / "a.wav"
    sf.write(path, tones([440.0], 0.2, 16000)[:, 0], 16000)
    blocks, _ = replay(file_cfg(path, realtime=False))
    with pytest.raises(ValueError):
        blocks[0].raw[0, 0] = 1.0  # shared with other consumers: nobody may edit in place
    with pytest.raises(ValueError):
        blocks[0].mono16k[0] = 1.0
