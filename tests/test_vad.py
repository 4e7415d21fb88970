"""Energy VAD on real (espeak-ng) speech: utterance boundaries, caps, silence."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from appliance.config.schema import VadConfig
from appliance.vad import EnergySegmenter
from tests.speech import RATE, dialogue, espeak, trimmed


def run(seg: EnergySegmenter, audio: np.ndarray, block: int = 512):
    out = []
    for i in range(0, audio.size, block):
        out += seg.feed(audio[i:i + block], i / RATE)
    return out + seg.flush()


def test_three_phrases_give_three_utterances_at_the_right_times():
    audio, truth = dialogue(["Good morning, how are you today?", "I have a headache.",
                             "Let us check your blood pressure."], gap_s=1.2)
    utts = run(EnergySegmenter(VadConfig()), audio)
    assert len(utts) == 3
    for u, (s, e) in zip(utts, truth, strict=True):
        assert u.start <= s + 0.05 and u.start >= s - 0.5, (u.start, s)
        assert u.end >= e - 0.05 and u.end <= e + 0.8, (u.end, e)
        assert u.audio.size == pytest.approx(u.duration * RATE, abs=1)


def test_block_size_does_not_change_the_result():
    audio, _ = dialogue(["One two three.", "Four five six."])
    a = run(EnergySegmenter(VadConfig()), audio, block=160)
    b = run(EnergySegmenter(VadConfig()), audio, block=4000)
    assert [(round(u.start, 3), round(u.end, 3)) for u in a] == [(round(u.start, 3), round(u.end, 3)) for u in b]


def test_silence_and_steady_noise_give_nothing():
    rng = np.random.default_rng(1)
    silence = np.zeros(RATE * 5, np.float32)
    fan = rng.normal(0, 0.02, RATE * 10).astype(np.float32)  # loud steady fan, -34 dBFS
    assert run(EnergySegmenter(VadConfig()), silence) == []
    # The floor adapts within its 3 s window: at most one onset piece, nothing after that.
    utts = run(EnergySegmenter(VadConfig()), fan)
    assert len(utts) <= 1 and all(u.end < 4.0 for u in utts)


def test_speech_from_the_first_frame_is_kept():
    speech = espeak("Hello, I am doctor Smith.")
    [u] = run(EnergySegmenter(VadConfig()), np.concatenate([speech, np.zeros(RATE, np.float32)]))
    assert u.start == 0.0 and u.end >= speech.size / RATE - 0.3


def test_long_speech_is_split_below_the_cap_at_quiet_points():
    cfg = VadConfig(max_utterance_s=6.0, min_silence_ms=1500)
    words = " ".join(["the patient reports chest pain on exertion"] * 6)
    audio = espeak(words, wpm=170)
    utts = run(EnergySegmenter(cfg), audio)
    assert len(utts) >= 2
    assert all(u.duration <= 6.0 + 1e-6 for u in utts)
    assert all(u.split for u in utts[:-1])
    # contiguous: nothing between pieces is lost
    for a, b in itertools.pairwise(utts):
        assert b.start == pytest.approx(a.end, abs=1e-6)


def test_flush_returns_the_utterance_in_flight():
    speech = espeak("This sentence is cut off by the stop button")
    seg = EnergySegmenter(VadConfig())
    assert seg.feed(speech, 0.0) == []  # no pause yet: still in flight
    assert seg.in_speech() and seg.pending_audio().size > 0
    [u] = seg.flush()
    assert u.duration > 1.0
    assert not seg.in_speech()


def test_short_click_is_not_speech():
    audio = np.zeros(RATE * 2, np.float32)
    audio[RATE:RATE + 800] = 0.5  # 50 ms click
    assert run(EnergySegmenter(VadConfig()), audio) == []


def test_a_long_utterance_ends_at_a_shorter_pause():
    """A 300 ms breath ends a monologue already past long_utterance_s, but not a short sentence."""
    rng = np.random.default_rng(3)
    breath = rng.normal(0, 1e-4, int(0.3 * RATE)).astype(np.float32)
    first = trimmed("This is the first sentence of a rather long answer that goes on.")
    second = trimmed("And here it continues.")
    audio = np.concatenate([np.zeros(RATE // 2, np.float32), first, breath, second,
                            np.zeros(RATE, np.float32)])
    long_first = first.size / RATE > 2.0
    assert long_first
    short = run(EnergySegmenter(VadConfig(long_utterance_s=30.0)), audio)
    early = run(EnergySegmenter(VadConfig(long_utterance_s=2.0, long_min_silence_ms=200)), audio)
    assert len(short) == 1  # 300 ms < min_silence_ms: one utterance
    assert len(early) == 2
    assert abs(early[0].end - (0.5 + first.size / RATE)) < 0.35  # cut in the breath
