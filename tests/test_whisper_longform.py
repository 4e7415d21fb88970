"""Nothing spoken is lost: timestamps and seek, temperature fallback, the previous-text prompt and
the implausibly-short check, on real speech with the real tiny.en model."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from appliance.asr.engine import Recognition
from appliance.asr.whisper import WhisperOnnx
from appliance.asr.whisper.decoding import implausibly_short, needs_fallback, quiet_splits
from appliance.asr.whisper.longform import decode_with_fallback
from appliance.config.schema import ApplianceConfig, AsrConfig, DiarizeConfig, PathsConfig, VadConfig
from appliance.speech.offline import transcribe_file
from appliance.speech.pipeline import SpeechPipeline
from tests import asr_model
from tests.speech import RATE, espeak
from tests.test_whisper_runtime import wer

whisper_model_dir = asr_model.whisper_model_dir
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
KOREAN = "안녕하세요 오늘 어디가 아프세요 저는 머리가 아프고 열이 조금 있어요 어제부터 기침도 많이 했어요"


def librivox() -> list[tuple[np.ndarray, str]]:
    if not LIBRIVOX.is_dir():
        pytest.skip("pocketsphinx-testdata is not installed (apt package pocketsphinx-testdata)")
    refs = {}
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        text, _, stem = line.rpartition(" (")
        refs[stem.rstrip(")")] = text.replace("<s>", "").replace("</s>", "").strip()
    return [(sf.read(p, dtype="float32")[0], refs[p.stem]) for p in sorted(LIBRIVOX.glob("*.wav"))]


@pytest.fixture(scope="module")
def engine(whisper_model_dir) -> WhisperOnnx:
    return WhisperOnnx(whisper_model_dir, AsrConfig())


def test_a_quiet_far_talker_after_a_near_one_is_not_dropped(engine, caplog):
    """A near talker (2.5 s) then a far one 30 dB quieter (13 s) in one utterance: the greedy
    decoder without timestamps stopped after the near talker's sentence (7 of 47 words, the
    code before this change); the timestamped decode ends at 3 s, and the seek goes on from there."""
    clips = librivox()
    rng = np.random.default_rng(0)
    audio = np.concatenate([clips[1][0], np.zeros(RATE // 4, np.float32), clips[0][0] * 0.03, clips[3][0] * 0.03])
    audio += rng.normal(0, 1e-4, audio.size).astype(np.float32)
    ref = " ".join(clips[i][1] for i in (1, 0, 3))
    with caplog.at_level(logging.INFO, logger="appliance.asr.whisper.longform"):
        r = engine.recognize(audio)
    assert "seek" in r.events and "continuing from there" in caplog.text
    assert wer([ref], [r.text]) < 0.15, r.text
    assert len(r.text.split()) >= 40


@pytest.mark.slow
def test_speech_past_30_seconds_is_transcribed(engine):
    """50 s of read speech in one piece (the first 30 s used to be all that was recognised).
    The second half reads the clips in reverse order: the same sentences verbatim after the
    previous-text prompt that ends with them let tiny.en skip most of them on one CPU (WER 0.47)."""
    clips = librivox()
    order = clips + clips[::-1]
    parts = [x for audio, _ in order for x in (audio, np.zeros(RATE // 10, np.float32))]
    ref = " ".join(text for _, text in order)
    r = engine.recognize(np.concatenate(parts))
    assert "seek" in r.events
    assert wer([ref], [r.text]) < 0.1, r.text


@pytest.mark.slow
def test_temperature_fallback_is_taken_on_a_bad_greedy_decode(engine):
    """Korean speech to the English-only model: the greedy decode is too unlikely, so the
    decoder goes on (greedy without timestamps, then sampling at higher temperatures:
    Whisper's fallback) instead of keeping it."""
    cfg = engine.cfg
    # The same words at three speeds: how likely tiny.en finds each greedy decode (and whether it
    # calls the audio silence, no_speech 0.65-0.67 measured on an AVX2-only CPU) varies with the
    # CPU's int8 kernels; at least one is a bad decode, and every bad one falls back.
    clips = [espeak(KOREAN, voice="ko", wpm=wpm) for wpm in (160, 140, 180)]
    bad = [a for a in clips if needs_fallback(engine.decode(a, timestamps=True), cfg.compression_ratio_threshold,
                                              cfg.logprob_threshold, cfg.no_speech_threshold)]
    assert bad
    for audio in bad:  # the rejected greedy decode is not kept: the next step of the plan is taken
        assert decode_with_fallback(engine, audio, (), None).attempts > 1


@pytest.mark.slow
def test_implausibly_short_text_is_decoded_again_and_logged(engine, caplog):
    """7.6 s of speech (Korean, which tiny.en cannot write) decodes to "no speech": the check
    fires on what would be stored, decodes again in pieces and invents nothing."""
    with caplog.at_level(logging.WARNING, logger="appliance.asr.whisper.longform"):
        r = engine.recognize(espeak(KOREAN, voice="ko"))
    assert "short" in r.events and "short-recovered" not in r.events and r.no_speech
    assert "implausibly short text for 7.6 s of speech" in caplog.text


@pytest.mark.slow
def test_the_pipeline_counts_the_check_and_keeps_the_text(whisper_model_dir, tmp_path):
    """Through the daemon's pipeline with the bar raised above normal speech (25 characters a
    second): every utterance is checked and decoded again, counted, and its text kept."""
    path = tmp_path / "visit.wav"
    silence = np.zeros(RATE, np.float32)
    sentences = ["Your cholesterol levels have improved since the last visit.",
                 "We will check your blood pressure again next month."]
    sf.write(path, np.concatenate([silence, espeak(sentences[0]), silence, silence, espeak(sentences[1]), silence]),
             RATE)
    cfg = ApplianceConfig(paths=PathsConfig(models_dir=str(whisper_model_dir.parent)), vad=VadConfig(engine="energy"),
                          diarize=DiarizeConfig(enabled=False))
    engine = WhisperOnnx(whisper_model_dir, AsrConfig(implausible_chars_per_s=25.0))
    result = transcribe_file(cfg, engine, str(path))
    assert result.stats.asr_events["short"] == len(result.segments) == 2
    assert wer(sentences, [s.text for s in result.segments]) < 0.1


def test_the_check_judges_text_against_speech_time():
    assert implausibly_short("What's going on?", 14.0, 3.0)
    assert not implausibly_short("He was not an ill-disposed young man.", 3.0, 3.0)
    assert not implausibly_short("Yes.", 1.5, 3.0)  # too short to judge
    assert not implausibly_short("", 14.0, 0.0)  # turned off
    audio = np.concatenate([np.ones(RATE * 4, np.float32), np.zeros(RATE // 5, np.float32),
                            np.ones(RATE * 5, np.float32)])
    cut = quiet_splits(audio, RATE)
    assert len(cut) == 1 and RATE * 4 <= cut[0] < RATE * 4 + RATE // 5  # in the pause


def test_previous_text_prompts_the_next_utterance_until_a_silence_or_a_new_visit(engine):
    engine.reset_context()
    said = Recognition(text="The patient takes metoprolol twice a day.")
    engine.note_final(10.0, 13.0, said)
    previous = engine.history.for_start(14.0)  # 1 s later: the same conversation
    assert engine.tokenizer.decode(engine.full_prompt(previous)).strip() == said.text
    assert engine.transcribe(espeak("He stopped smoking about five years ago.")).text  # stateless call still works
    assert engine.history.for_start(30.0) == []  # 17 s of silence: forgotten
    assert engine.history.for_start(14.0) == []  # and stays forgotten
    engine.note_final(10.0, 13.0, said)
    engine.note_final(14.0, 16.0, Recognition(text="Thank you. Thank you.", events=("hallucination",)))
    assert engine.history.for_start(16.5) == []  # a hallucination is never the next prompt
    engine.note_final(10.0, 13.0, said)
    pipeline = SpeechPipeline(segmenter=None, engine=engine, on_segment=lambda _s: None)  # type: ignore[arg-type]
    pipeline.begin("visit-1", 0.0)
    engine.note_final(10.0, 13.0, said)
    pipeline.begin("visit-1", 20.0)  # resume after a pause: same visit
    assert engine.history.for_start(13.5)
    pipeline.begin("visit-2", 0.0)  # the next patient
    assert engine.history.for_start(13.5) == []


@pytest.mark.slow
def test_the_daemon_status_shows_the_events(tmp_path):
    """A visit of Korean speech (tiny.en cannot write it): its greedy decode is unlikely, the
    fallback is taken, and `status` reports it."""
    from appliance.config import parse_config
    from appliance.daemon.room import build_controller
    from tests.daemon import installed_models_dir

    wav = tmp_path / "korean.wav"
    silence = np.zeros(RATE, np.float32)
    sf.write(wav, np.concatenate([silence, espeak(KOREAN, voice="ko"), silence]), RATE)
    cfg = parse_config({
        "paths": {"state_dir": str(tmp_path / "state"), "models_dir": str(installed_models_dir())},
        "capture": {"source": "file", "file": str(wav), "realtime": False},
        "asr": {"engine": "whisper-onnx", "model": "whisper-tiny.en"},
        "vad": {"engine": "energy"}, "diarize": {"enabled": False},
    })
    c = build_controller(cfg)
    try:
        with c.visit.running():
            c.start(name="KO")
            c.wait_source_finished(30)
            c.stop()
        status = c.snapshot().as_dict()["asr_events"]
        assert status == dict(c.visit.stats.asr_events) and status.get("fallback", 0) >= 1
    finally:
        c.store.close()
