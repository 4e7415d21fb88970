"""Capture DSP: streaming resampler, mix-down, levels, clipping and silence tracking."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from appliance.capture.dsp import FLOOR_DBFS, StreamResampler, mix_down, peak_dbfs, rms_dbfs
from appliance.capture.meter import CLIP_HOLD_S, LevelMeter

RATES = [16000, 22050, 32000, 44100, 48000, 96000]


def feed_in_blocks(r: StreamResampler, x: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 2500))  # includes tiny blocks: 1 sample at a time must work too
        out.append(r.process(x[i:i + n]))
        i += n
    out.append(r.flush())
    return np.concatenate(out)


@pytest.mark.parametrize("rate", RATES)
def test_blockwise_resampling_equals_whole_signal_resampling(rate: int):
    x = np.random.default_rng(rate).normal(0, 0.3, rate + 777)
    whole = resample_poly(x, 16000, rate) if rate != 16000 else x
    r = StreamResampler(rate)
    got = feed_in_blocks(r, x, seed=1)
    assert got.dtype == np.float32
    assert len(got) == len(whole)
    np.testing.assert_allclose(got, whole, atol=1e-6)
    # The resampler is reusable after flush, and block sizes do not matter.
    again = feed_in_blocks(r, x, seed=2)
    np.testing.assert_allclose(again, got, atol=1e-7)


def test_live_output_lags_by_half_the_filter_only():
    r = StreamResampler(48000)
    out = sum(len(r.process(np.zeros(1536))) for _ in range(100))
    assert 100 * 512 - out == pytest.approx(r.latency_samples / 3, abs=1)
    assert r.latency_samples / 48000 < 0.002


@pytest.mark.parametrize("rate", [48000, 44100, 22050])
def test_1khz_sine_keeps_frequency_and_amplitude(rate: int):
    t = np.arange(2 * rate) / rate
    x = 0.5 * np.sin(2 * np.pi * 1000.0 * t)
    r = StreamResampler(rate)
    y = np.concatenate([r.process(x[i:i + 1411]) for i in range(0, len(x), 1411)] + [r.flush()])
    assert len(y) == 32000
    steady = y[1000:-1000]
    spec = np.abs(np.fft.rfft(steady * np.hanning(len(steady)), 16 * len(steady)))
    freq = np.fft.rfftfreq(16 * len(steady), 1 / 16000)[np.argmax(spec)]
    assert freq == pytest.approx(1000.0, abs=1.0)
    assert np.sqrt(np.mean(steady.astype(np.float64) ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.005)
    assert np.max(np.abs(steady)) == pytest.approx(0.5, rel=0.005)


def test_tones_above_8khz_do_not_alias_into_speech():
    rate = 48000
    x = 0.5 * np.sin(2 * np.pi * 12000.0 * np.arange(rate) / rate)  # would alias to 4 kHz
    r = StreamResampler(rate)
    y = np.concatenate([r.process(x), r.flush()])[500:-500]
    assert 20 * np.log10(np.sqrt(np.mean(y ** 2)) / (0.5 / np.sqrt(2))) < -40


def test_mix_down_picks_and_averages_channels():
    raw = np.array([[0.1, 0.2, 0.3, 0.4], [-0.1, -0.2, -0.3, -0.4]], np.float32)
    np.testing.assert_allclose(mix_down(raw, ()), [0.25, -0.25], atol=1e-7)
    np.testing.assert_allclose(mix_down(raw, (2,)), [0.3, -0.3], atol=1e-7)
    np.testing.assert_allclose(mix_down(raw, (0, 3)), [0.25, -0.25], atol=1e-7)
    full = np.ones((4, 4), np.float32)
    assert mix_down(full).max() <= 1.0  # a mean never leaves [-1, 1]
    assert mix_down(raw[:, :1]).dtype == np.float32


def test_rms_and_peak_dbfs():
    t = np.arange(48000) / 48000
    block = np.stack([np.sin(2 * np.pi * 1000 * t), np.full_like(t, 0.1), np.zeros_like(t)], axis=1)
    np.testing.assert_allclose(rms_dbfs(block), [-3.01, -20.0, FLOOR_DBFS], atol=0.01)
    np.testing.assert_allclose(peak_dbfs(block), [0.0, -20.0, FLOOR_DBFS], atol=0.01)
    assert rms_dbfs(np.zeros((0, 2))).tolist() == [FLOOR_DBFS, FLOOR_DBFS]


def meter(**kw) -> LevelMeter:
    return LevelMeter(2, 16000, clip_dbfs=kw.get("clip", -0.5), silence_dbfs=kw.get("silence", -70.0))


def test_meter_shows_the_last_100_ms_per_channel():
    m = meter()
    m.update(np.full((16000, 2), [0.5, 0.05], np.float32))
    assert m.levels_dbfs == pytest.approx((-6.02, -26.02), abs=0.01)
    m.update(np.full((800, 2), 0.001, np.float32))  # 50 ms quieter: half the window
    lv = m.levels_dbfs
    assert lv[0] == pytest.approx(20 * np.log10(np.sqrt((0.25 + 1e-6) / 2)), abs=0.01)
    m.update(np.full((1600, 2), 0.001, np.float32))
    assert m.levels_dbfs == pytest.approx((-60.0, -60.0), abs=0.01)
    assert m.peak_dbfs == pytest.approx((-60.0, -60.0), abs=0.01)


def test_clipping_is_flagged_then_released():
    m = meter(clip=-0.5)
    m.update(np.full((1600, 2), 0.9, np.float32))  # -0.9 dBFS: loud but not clipped
    assert not m.clipping
    block = np.zeros((1600, 2), np.float32)
    block[100, 1] = 0.96  # one sample at -0.35 dBFS
    m.update(block)
    assert m.clipping
    m.update(np.zeros((int(CLIP_HOLD_S * 16000) - 1600, 2), np.float32))
    assert m.clipping
    m.update(np.zeros((3200, 2), np.float32))
    assert not m.clipping
    m.update(block)
    m.clear()  # paused / unplugged: no stale warning
    assert not m.clipping and m.levels_dbfs == (FLOOR_DBFS, FLOOR_DBFS)


def test_silence_counts_continuous_quiet_on_every_channel():
    m = meter(silence=-70.0)
    quiet = np.full((512, 2), 1e-4, np.float32)  # -80 dBFS
    for _ in range(100):
        m.update(quiet)
    assert m.silent_seconds == pytest.approx(3.2)
    one_live = quiet.copy()
    one_live[:, 1] = 0.01  # one channel still hears the room: not muted
    m.update(one_live)
    assert m.silent_seconds == 0.0
    m.update(quiet)
    m.clear()  # a pause is not silence, and does not reset the count either
    m.update(quiet)
    assert m.silent_seconds == pytest.approx(1024 / 16000)
