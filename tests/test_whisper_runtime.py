"""WhisperOnnx, the default recogniser: real speech, no-speech guards, partials, vocabulary prompt."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from appliance.asr.engine import transcribe_with
from appliance.asr.whisper import WhisperOnnx
from appliance.asr.whisper.runtime import MAX_PROMPT_TOKENS, compression_ratio, looping_tail, repeated_tail
from appliance.config.schema import AsrConfig
from tests import asr_model
from tests.speech import RATE, espeak

whisper_model_dir = asr_model.whisper_model_dir  # the shared session fixture

WPM = 145  # conversational pace
CLEAR = [
    "Your cholesterol levels have improved since the last visit.",
    "He stopped smoking about five years ago.",
    "We will check your blood pressure again next month.",
    "Take this medicine twice a day with food.",
    "The patient has a mild fever and a sore throat.",
]
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower().replace("-", " ")).split()


def edits(ref: list[str], hyp: list[str]) -> int:
    d = list(range(len(hyp) + 1))
    for i, rw in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, hw in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (rw != hw))
    return d[len(hyp)]


def wer(refs: list[str], hyps: list[str]) -> float:
    pairs = [(words(r), words(h)) for r, h in zip(refs, hyps, strict=True)]
    return sum(edits(r, h) for r, h in pairs) / sum(len(r) for r, _ in pairs)


@pytest.fixture(scope="module")
def engine(whisper_model_dir) -> WhisperOnnx:
    return WhisperOnnx(whisper_model_dir, AsrConfig())


def test_clear_speech_is_transcribed(engine):
    hyps = []
    for sentence in CLEAR:
        r = engine.transcribe(espeak(sentence, wpm=WPM))
        assert not r.no_speech and r.avg_logprob is not None and r.no_speech_prob < 0.3
        hyps.append(r.text)
    assert wer(CLEAR, hyps) <= 0.10, hyps
    assert engine.name.startswith("whisper-onnx:whisper-tiny.en")


def test_real_read_speech(engine):
    """Five LibriVox sentences read by a person (the CTranslate2 runtime, same weights and greedy: 7.0 %)."""
    refs = {}
    transcription = LIBRIVOX / "transcription"
    if not transcription.is_file():
        pytest.skip("pocketsphinx-testdata (real recordings) is not installed")
    for line in transcription.read_text().splitlines():
        m = re.match(r"<s> (.*) </s> \((.*)\)", line.strip())
        if m:
            refs[m.group(2)] = m.group(1).replace("mister", "mr")
    hyps = [engine.transcribe(sf.read(LIBRIVOX / f"{name}.wav", dtype="float32")[0]).text for name in refs]
    assert wer(list(refs.values()), hyps) <= 0.12, hyps


@pytest.mark.slow
def test_silence_and_noise_are_no_speech(engine):
    rng = np.random.default_rng(0)
    t = np.arange(3 * RATE) / RATE
    for name, audio in {
        "digital silence": np.zeros(2 * RATE, np.float32),
        "room silence": rng.normal(0, 1e-3, 3 * RATE),
        "white noise": rng.normal(0, 0.1, 3 * RATE),
        "loud white noise": rng.normal(0, 0.3, 5 * RATE),
        "mains hum": 0.2 * np.sin(2 * np.pi * 50 * t),
        "too short": np.zeros(RATE // 20, np.float32),
    }.items():
        r = engine.transcribe(audio.astype(np.float32))
        assert r.no_speech and r.text == "", (name, r)


def test_partial_of_first_half_is_a_prefix(engine, monkeypatch):
    audio = espeak(CLEAR[2], wpm=WPM)
    frames = np.abs(audio[: audio.size // 320 * 320]).reshape(-1, 320).mean(axis=1)
    lo, hi = int(frames.size * 0.4), int(frames.size * 0.6)
    cut = (lo + int(np.argmin(frames[lo:hi]))) * 320  # a pause between words near the middle
    stream = engine.new_stream()
    stream.accept(audio[:cut])
    first = stream.partial()
    partial = words(first)
    decodes = []
    monkeypatch.setattr(engine, "decode", lambda *a, **k: decodes.append(1))
    assert stream.partial() == first and not decodes  # no new audio: not decoded again
    monkeypatch.undo()
    stream.accept(audio[cut:])
    final = words(stream.finish().text)
    assert final == words(CLEAR[2])
    assert 0 < len(partial) < len(final)
    assert edits(final[: len(partial)], partial) <= max(1, len(partial) // 3), (partial, final)


def test_stream_in_chunks_equals_whole_utterance(engine):
    audio = espeak(CLEAR[3], wpm=WPM)
    stream = engine.new_stream()
    for chunk in np.array_split(audio, 7):
        stream.accept(chunk)
    assert stream.finish().text == engine.transcribe(audio).text == transcribe_with(engine, audio).text


def test_token_budget_bounds_the_output(engine):
    audio = espeak(CLEAR[0], wpm=WPM)
    assert len(engine.decode(audio, max_tokens=3).tokens) == 3
    assert len(engine.decode(audio[: RATE // 2]).tokens) <= 8 + 4  # 8 + 8 tokens/s for 0.5 s


@pytest.mark.slow
def test_vocabulary_prompt_spells_a_drug_name(whisper_model_dir):
    sentence = "She was prescribed metoprolol for her blood pressure."
    audio = espeak(sentence, wpm=WPM)
    plain = WhisperOnnx(whisper_model_dir, AsrConfig())
    biased = WhisperOnnx(whisper_model_dir, AsrConfig(vocabulary=("Metoprolol",)))
    assert plain.prompt == []
    assert biased.prompt[0] == biased.sot_prev and biased.tokenizer.decode(biased.prompt) == " Metoprolol."
    seen: list[list[int]] = []
    step = biased._step

    def spy(io, tokens, past):
        seen.append(list(tokens))
        return step(io, tokens, past)

    biased._step = spy  # type: ignore[method-assign]
    with_prompt = biased.transcribe(audio).text
    assert seen[0] == [*biased.prompt, biased.sot]  # the prompt reaches the decoder before <|sot|>
    assert "metoprolol" not in words(plain.transcribe(audio).text)
    assert "metoprolol" in words(with_prompt), with_prompt
    assert wer([sentence], [with_prompt]) <= 0.1


def test_vocabulary_file_terms_and_prompt_bound(whisper_model_dir, tmp_path):
    vocab = tmp_path / "terms.txt"
    vocab.write_text("# clinic formulary\napixaban\n" + "\n".join(f"drugname{i}" for i in range(200)) + "\n")
    e = WhisperOnnx(whisper_model_dir, AsrConfig(vocabulary=("Metoprolol",), vocabulary_file=str(vocab)))
    text = e.tokenizer.decode(e.prompt)
    assert text.startswith(" Metoprolol, apixaban, drugname0,") and text.endswith(".")
    assert len(e.prompt) <= MAX_PROMPT_TOKENS + 1 and "drugname199" not in text
    assert re.fullmatch(r"( [A-Za-z0-9]+,)* [A-Za-z0-9]+\.", text)  # whole terms only
    assert e.transcribe(espeak(CLEAR[2], wpm=WPM)).text == "We will check your blood pressure again next month."


def test_repetition_loop_is_cut(engine, monkeypatch):
    """A decoder stuck in a loop: the output keeps one copy and stops early."""
    loop = engine.tokenizer.encode(" the patient is fine and")
    calls = []

    def fake_step(io, tokens, past):
        calls.append(tokens)
        logits = np.zeros(engine.n_vocab, np.float32)
        n_text = sum(len(c) == 1 for c in calls[2:])  # steps after the two prompt calls
        logits[loop[n_text % len(loop)]] = 10.0
        return logits

    monkeypatch.setattr(engine, "_step", fake_step)
    r = engine.decode(np.zeros(10 * RATE, np.float32))
    assert r.cut_loop and r.tokens == loop and len(calls) < 2 + 4 * len(loop)


def test_guards_units():
    assert repeated_tail([1, 2, 3] * 4) == 3
    assert repeated_tail([5] * 6) == 1
    assert repeated_tail([1, 2, 3, 4, 1, 2]) is None
    assert repeated_tail(list(range(20))) is None
    assert compression_ratio("the same words again " * 12) > 2.4 > compression_ratio(CLEAR[0])
    hi = [10, 11, 12, 13, 14, 15, 16, 17, 18]  # "Hi, Mark, how are you?" going round again
    assert looping_tail(hi + hi + hi[:4]) == len(hi)
    assert looping_tail([1, 2, 3, 4, *hi, *hi]) == 4 + len(hi)
    assert looping_tail([7, 8, 9, 1, 2, 3, 4, 5]) is None
    assert looping_tail([9, 5, 6, 5, 6, 5, 6]) is None  # "no, no, no" is speech (a period under 3)


def test_session_options_follow_config(whisper_model_dir):
    e = WhisperOnnx(whisper_model_dir, AsrConfig(threads=2))
    so = e._dec.get_session_options()
    assert so.intra_op_num_threads == 2 and so.inter_op_num_threads == 1
    assert e.transcribe(espeak(CLEAR[4], wpm=WPM)).text == CLEAR[4]


def test_cancel_abandons_a_partial_but_never_a_final(engine):
    import threading

    from appliance.asr.engine import Cancelled

    audio = np.concatenate([espeak(t, wpm=WPM) for t in CLEAR[:3]])
    stream = engine.new_stream()
    stream.accept(audio)
    watcher_done = threading.Event()

    def cancel_when_running() -> None:
        while stream._partial_run is None and not watcher_done.is_set():
            pass  # spin: the partial's run options appear as soon as it starts
        stream.cancel()

    watcher = threading.Thread(target=cancel_when_running)
    watcher.start()
    with pytest.raises(Cancelled):
        stream.partial()
    watcher_done.set()
    watcher.join(5)
    stream.cancel()  # nothing running: a no-op, and the final is unaffected
    assert words(stream.finish().text)[:4] == words(CLEAR[0])[:4]
