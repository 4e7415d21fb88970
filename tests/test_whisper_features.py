"""Whisper log-mel features in numpy against faster-whisper's feature extractor."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.asr.whisper.features import log_mel, mel_filters
from tests.speech import espeak


@pytest.fixture(scope="module")
def reference():
    fe = pytest.importorskip("faster_whisper.feature_extractor")
    return fe.FeatureExtractor(feature_size=80)


def test_mel_filters_match(reference):
    assert np.allclose(mel_filters(80), reference.mel_filters, atol=1e-7)


@pytest.mark.parametrize("kind", ["speech", "noise", "short"])
def test_features_match_any_length(reference, kind):
    rng = np.random.default_rng(1)
    audio = {"speech": lambda: espeak("Take this medicine twice a day with food."),
             "noise": lambda: rng.normal(0, 0.1, 16000 * 3 + 77).astype(np.float32),
             "short": lambda: rng.normal(0, 0.1, 1000).astype(np.float32)}[kind]()
    ours = log_mel(audio, 80, padding=160)
    theirs = reference(audio, padding=160)
    assert ours.shape == theirs.shape == (80, (audio.size + 160) // 160)
    assert np.abs(ours - theirs).max() < 1e-4


def test_no_thirty_second_padding():
    assert log_mel(np.zeros(16000 * 2, np.float32)).shape == (80, 200)
    assert log_mel(np.zeros(100, np.float32)).shape == (80, 0)
