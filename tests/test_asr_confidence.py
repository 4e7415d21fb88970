"""Word confidences from the Whisper decoder's token probabilities (real model, espeak-ng speech)."""

from __future__ import annotations

import math

import pytest

from appliance.asr.whisper import WhisperOnnx
from appliance.asr.whisper.runtime import word_confidences
from appliance.config.schema import AsrConfig
from tests import asr_model
from tests.speech import espeak

whisper_model_dir = asr_model.whisper_model_dir  # the shared session fixture

SENTENCES = ["Take this medicine twice a day with food.", "We will check your blood pressure again next month."]


def test_a_word_is_as_sure_as_its_weakest_token():
    pieces = [b" Take", b" met", b"opro", b"lol", b" twice", b"."]
    got = word_confidences(pieces, [-0.01, -0.1, -2.0, -0.3, -0.05, -0.2], "Take metoprolol twice.")
    assert got == (round(math.exp(-0.01), 3), round(math.exp(-2.0), 3), round(math.exp(-0.2), 3))
    # Tokens that do not spell the text give nothing rather than a guess.
    assert word_confidences(pieces, [-0.1] * 6, "Take metoprolol twice daily.") is None
    assert word_confidences(pieces, [-0.1] * 5, "Take metoprolol twice.") is None


@pytest.fixture(scope="module")
def engine(whisper_model_dir) -> WhisperOnnx:
    return WhisperOnnx(whisper_model_dir, AsrConfig())


@pytest.mark.parametrize("sentence", SENTENCES)
def test_every_recognised_word_has_a_confidence(engine, sentence):
    r = engine.transcribe(espeak(sentence, wpm=145))
    assert not r.no_speech and r.word_confidence is not None
    assert len(r.word_confidence) == len(r.text.split()) >= 5
    assert all(0.0 < c <= 1.0 for c in r.word_confidence)
    # The line's mean log-probability counts every token (and the end token); the weakest word is
    # never surer than the line as a whole.
    assert min(r.word_confidence) <= math.exp(r.avg_logprob) + 1e-3
