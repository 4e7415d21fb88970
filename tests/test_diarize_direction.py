"""Direction of arrival from the raw channels: synthetic plane waves of real speech on the real
array geometries, clean, noisy and reverberant."""

from __future__ import annotations

import time

import numpy as np
import pytest

from appliance.diarize import DirectionTracker, estimate_direction, finder_for
from appliance.hardware.arrays import MINIDSP_UMA8, RESPEAKER_2MIC_HAT, RESPEAKER_USB_4MIC_V2
from tests.speech import RATE
from tests.test_diarize_voices import CLINIC, female, male, plane_wave

AZIMUTHS = (0.0, 37.0, 90.0, 145.0, 200.0, 271.0, 330.0)
CONDITIONS = {"clean": {}, "noise 10 dB": {"snr_db": 10.0}, "reverb 0.4 s + noise 20 dB": {"rt60": 0.4, "snr_db": 20.0}}


def _error(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


@pytest.mark.parametrize("condition", CONDITIONS)
def test_respeaker_4mic_finds_the_talker(condition):
    speech = male(CLINIC[2])
    for k, az in enumerate(AZIMUTHS):
        raw = plane_wave(speech, RESPEAKER_USB_4MIC_V2, az, seed=k, **CONDITIONS[condition])
        d = estimate_direction(raw, RATE, RESPEAKER_USB_4MIC_V2)
        assert d is not None and not d.ambiguous
        assert _error(d.azimuth_deg, az) <= 10.0, (condition, az, d)
        assert d.confidence > 0.4, (condition, az, d)


def test_uma8_finds_the_talker():
    speech = female(CLINIC[0])
    for az in (20.0, 160.0, 250.0):
        d = estimate_direction(plane_wave(speech, MINIDSP_UMA8, az, rt60=0.3, snr_db=15.0), RATE, MINIDSP_UMA8)
        assert d is not None and _error(d.azimuth_deg, az) <= 10.0, (az, d)


def test_two_mic_hat_gives_the_angle_from_its_axis_front_back_folded():
    speech = male(CLINIC[2])
    for az, expected in ((60.0, 60.0), (300.0, 60.0), (135.0, 135.0), (225.0, 135.0), (10.0, 10.0), (180.0, 180.0)):
        raw = plane_wave(speech, RESPEAKER_2MIC_HAT, az, snr_db=20.0, rt60=0.3)
        d = estimate_direction(raw, RATE, RESPEAKER_2MIC_HAT)
        assert d is not None and d.ambiguous  # a source and its mirror image sound the same
        assert 0.0 <= d.azimuth_deg <= 180.0
        assert _error(d.azimuth_deg, expected) <= 10.0, (az, d)


def test_mono_input_or_unknown_array_gives_no_direction():
    speech = male(CLINIC[0])
    assert estimate_direction(speech[:, None], RATE, RESPEAKER_USB_4MIC_V2) is None
    assert estimate_direction(speech, RATE, RESPEAKER_USB_4MIC_V2) is None
    assert estimate_direction(plane_wave(speech, RESPEAKER_USB_4MIC_V2, 90.0), RATE, None) is None
    # the 1-channel (processed) firmware of the 4-mic array carries no raw microphones
    assert estimate_direction(np.zeros((RATE, 1), np.float32), RATE, RESPEAKER_USB_4MIC_V2) is None
    assert estimate_direction(np.zeros((100, 6), np.float32), RATE, RESPEAKER_USB_4MIC_V2) is None  # too short


def test_diffuse_noise_has_low_confidence():
    rng = np.random.default_rng(1)
    raw = np.zeros((3 * RATE, 6), np.float32)
    raw[:, 1:5] = rng.normal(0, 0.01, (3 * RATE, 4))  # independent noise at each mic: no source
    d = estimate_direction(raw, RATE, RESPEAKER_USB_4MIC_V2)
    assert d is not None and d.confidence < 0.3


def test_tracker_follows_talkers_from_capture_blocks_without_keeping_audio():
    """Two people speaking in turn from two sides; the tracker is fed 32 ms blocks as capture
    delivers them and asked afterwards for each utterance's direction."""
    first, second = male(CLINIC[0]), female(CLINIC[1])
    gap = np.zeros((RATE // 2, 6), np.float32)
    raw = np.concatenate([plane_wave(first, RESPEAKER_USB_4MIC_V2, 40.0, snr_db=25.0), gap,
                          plane_wave(second, RESPEAKER_USB_4MIC_V2, 220.0, snr_db=25.0, seed=1)])
    tracker = DirectionTracker(RESPEAKER_USB_4MIC_V2, RATE, keep_s=30.0)
    block = 512
    for i in range(0, len(raw), block):
        tracker.feed(raw[i:i + block], i / RATE)
    t1 = first.size / RATE
    t2 = t1 + 0.5
    d1, d2 = tracker.direction(0.0, t1), tracker.direction(t2, t2 + second.size / RATE)
    assert d1 is not None and _error(d1.azimuth_deg, 40.0) <= 10.0
    assert d2 is not None and _error(d2.azimuth_deg, 220.0) <= 10.0
    assert tracker.direction(100.0, 101.0) is None
    # after a pause the timeline jumps; the tracker follows the blocks' own times
    later = plane_wave(first, RESPEAKER_USB_4MIC_V2, 130.0, snr_db=25.0, seed=2)
    for i in range(0, len(later), block):
        tracker.feed(later[i:i + block], 200.0 + i / RATE)
    d3 = tracker.direction(200.0, 200.0 + first.size / RATE)
    assert d3 is not None and _error(d3.azimuth_deg, 130.0) <= 10.0
    # what it keeps is a few complex numbers per pair and frequency per 0.25 s, not samples
    kept = sum(c[2].nbytes for c in tracker._chunks)
    assert kept < raw[:, 1:5].nbytes


def test_direction_cost_per_second_of_audio():
    finder = finder_for(RESPEAKER_USB_4MIC_V2, RATE)
    raw = plane_wave(np.tile(male(CLINIC[2]), 3), RESPEAKER_USB_4MIC_V2, 75.0, snr_db=20.0)
    finder.estimate(raw[:RATE])  # warm up
    t0 = time.thread_time()
    finder.estimate(raw)
    cost = (time.thread_time() - t0) / (len(raw) / RATE)
    print(f"direction cost (ReSpeaker 4-mic): {cost * 1000:.1f} ms per s of audio")
    assert cost < 0.05
