"""Silero VAD segmenter on real (espeak-ng) speech and on noise, against the energy VAD."""

from __future__ import annotations

import dataclasses
import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import butter, lfilter

from appliance.config.schema import VadConfig
from appliance.models import ModelError
from appliance.vad import EnergySegmenter, make_segmenter
from appliance.vad.silero import WINDOW
from appliance.vad.utterance import Utterance
from tests.speech import RATE, dialogue, espeak
from tests.test_models import shared_models

SILERO = VadConfig(engine="silero")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_models(tmp_path_factory)[0]


def run(seg, audio: np.ndarray, block: int = 512) -> list[Utterance]:  # type: ignore[no-untyped-def]
    out: list[Utterance] = []
    for i in range(0, audio.size, block):
        out += seg.feed(audio[i:i + block], i / RATE)
    return out + seg.flush()


def spans(utts: list[Utterance]) -> list[tuple[float, float]]:
    return [(round(u.start, 6), round(u.end, 6)) for u in utts]


# -- noise makers ---------------------------------------------------------------------
rng = np.random.default_rng(7)


def _scaled(x: np.ndarray, dbfs: float) -> np.ndarray:
    return (x / np.sqrt(np.mean(x ** 2)) * 10 ** (dbfs / 20)).astype(np.float32)


def white(seconds: float, dbfs: float) -> np.ndarray:
    return _scaled(rng.normal(0, 1, int(seconds * RATE)), dbfs)


def pink(seconds: float, dbfs: float) -> np.ndarray:
    # Paul Kellet's 1/f filter on white noise.
    b, a = [0.049922035, -0.095993537, 0.050612699, -0.004408786], [1, -2.494956002, 2.017265875, -0.522189400]
    return _scaled(lfilter(b, a, rng.normal(0, 1, int(seconds * RATE))), dbfs)


def fan(seconds: float, dbfs: float) -> np.ndarray:
    """Low rumble plus motor hum harmonics with a slow wobble."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    rumble = lfilter(*butter(2, 400 / (RATE / 2)), rng.normal(0, 1, n))
    rumble /= np.sqrt(np.mean(rumble ** 2))
    hum = 0.5 * np.sin(2 * np.pi * 100 * t) + 0.3 * np.sin(2 * np.pi * 200 * t + 1) + 0.2 * np.sin(2 * np.pi * 300 * t)
    return _scaled((rumble + hum) * (1 + 0.1 * np.sin(2 * np.pi * 0.5 * t)), dbfs)


# -- tests ----------------------------------------------------------------------------
def test_three_phrases_give_three_utterances_at_the_right_times(models_dir: Path) -> None:
    audio, truth = dialogue(["Good morning, how are you today?", "I have a headache.",
                             "Let us check your blood pressure."], gap_s=1.2)
    utts = run(make_segmenter(SILERO, models_dir), audio)
    assert len(utts) == 3
    for u, (s, e) in zip(utts, truth, strict=True):
        assert s - 0.5 <= u.start <= s + 0.05, (u.start, s)
        assert e - 0.15 <= u.end <= e + 0.8, (u.end, e)
        assert u.audio.size == pytest.approx(u.duration * RATE, abs=1) and not u.split


def test_silence_and_noise_alone_give_nothing(models_dir: Path) -> None:
    for audio in (np.zeros(RATE * 5, np.float32), white(5, -60), white(6, -30), pink(6, -30), fan(8, -30)):
        assert run(make_segmenter(SILERO, models_dir), audio) == []


def test_silero_has_no_false_utterances_where_energy_vad_has_them(models_dir: Path) -> None:
    parts: list[np.ndarray] = []
    truth: list[tuple[float, float]] = []

    def add(x: np.ndarray, speech: np.ndarray | None = None) -> None:
        t = sum(p.size for p in parts) / RATE
        if speech is not None:
            nz = np.flatnonzero(np.abs(speech) > 1e-3)
            truth.append((t + nz[0] / RATE, t + nz[-1] / RATE))
            x = x + speech
        parts.append(x)

    # A hiss switched on, pink noise, then a fan someone talks over, then knocks on the door.
    add(white(2, -60)), add(white(2, -35)), add(white(2, -60)), add(pink(3, -35)), add(white(2, -60))
    add(fan(5, -32))
    sp = espeak("Good morning, how are you today?")
    add(fan(sp.size / RATE, -32), sp), add(fan(3, -32)), add(white(1, -60))
    knocks = white(2, -60)
    for at in (0.3, 0.6, 0.9):
        i = int(at * RATE)
        knocks[i:i + 400] += 0.3 * np.exp(-np.arange(400) / 80) * np.sign(rng.normal(size=400))
    add(knocks)
    sp = espeak("I have had a headache for three days.")
    add(pink(sp.size / RATE, -40), sp), add(white(2, -60))
    audio = np.concatenate(parts).astype(np.float32)

    def false_alarms(utts: list[Utterance]) -> list[tuple[float, float]]:
        return [(u.start, u.end) for u in utts if not any(u.start < e and u.end > s for s, e in truth)]

    silero = run(make_segmenter(SILERO, models_dir), audio)
    energy = run(EnergySegmenter(VadConfig()), audio)
    assert false_alarms(silero) == []
    assert len(silero) == 2 and all(u.start <= s + 0.05 for u, (s, _) in zip(silero, truth, strict=True))
    assert len(false_alarms(energy)) >= 2  # the material really is hard for a level detector


def test_speech_from_the_first_frame_is_kept(models_dir: Path) -> None:
    speech = espeak("Hello, I am doctor Smith.")
    [u] = run(make_segmenter(SILERO, models_dir), np.concatenate([speech, np.zeros(RATE, np.float32)]))
    assert u.start == 0.0 and u.end >= speech.size / RATE - 0.3


@pytest.mark.parametrize("background", ["none", "fan"])
def test_long_speech_is_split_below_the_cap_at_quiet_points(models_dir: Path, background: str) -> None:
    cfg = dataclasses.replace(SILERO, max_utterance_s=5.0, min_silence_ms=1500)
    speech = espeak(" ".join(["the patient reports chest pain on exertion"] * 6), wpm=170)
    audio = speech + fan(speech.size / RATE, -40) if background == "fan" else speech
    seg = make_segmenter(cfg, models_dir)
    utts: list[Utterance] = []
    for i in range(0, audio.size, 512):
        utts += seg.feed(audio[i:i + 512], i / RATE)
        assert seg.pending_audio().size <= 5.0 * RATE  # RAM stays bounded by the cap
    utts += seg.flush()
    assert len(utts) >= 2
    assert all(u.duration <= 5.0 + 1e-6 for u in utts)
    assert all(u.split for u in utts[:-1]) and not utts[-1].split
    for a, b in itertools.pairwise(utts):
        assert b.start == pytest.approx(a.end, abs=1e-6)  # contiguous: nothing lost between pieces
    speech_rms = np.median(np.sqrt(np.mean(speech[: speech.size // WINDOW * WINDOW].reshape(-1, WINDOW) ** 2, 1)))
    for u in utts[:-1]:  # each cut ends on a window much quieter than typical speech (a gap between words)
        assert np.sqrt(np.mean(u.audio[-WINDOW:] ** 2)) < 0.5 * speech_rms


def test_block_size_does_not_change_the_result(models_dir: Path) -> None:
    audio, _ = dialogue(["One two three.", "Four five six."])
    results = [run(make_segmenter(SILERO, models_dir), audio, block=b) for b in (160, 512, 1000, 4000)]
    assert len(results[0]) == 2
    for other in results[1:]:
        assert spans(other) == spans(results[0])
        assert all(np.array_equal(a.audio, b.audio) for a, b in zip(other, results[0], strict=True))


def test_flush_returns_the_utterance_in_flight_and_restarts_the_stream(models_dir: Path) -> None:
    speech = espeak("This sentence is cut off by the stop button")
    seg = make_segmenter(SILERO, models_dir)
    assert seg.feed(speech, 0.0) == []
    assert seg.in_speech() and seg.pending_audio().size > RATE
    assert seg.pending_start() == pytest.approx(0.0)
    [u] = seg.flush()
    assert u.duration > 1.0 and not seg.in_speech() and seg.pending_audio().size == 0
    assert seg.pending_start() is None and u.start == pytest.approx(0.0)
    [again] = seg.feed(speech, 10.0) + seg.flush()  # resumed after a pause: same audio, same cut
    assert again.start - 10.0 == pytest.approx(u.start) and again.duration == pytest.approx(u.duration)


def test_short_bursts_and_clicks_are_not_speech(models_dir: Path) -> None:
    audio = np.zeros(RATE * 2, np.float32)
    audio[RATE:RATE + 800] = 0.5  # 50 ms click
    assert run(make_segmenter(SILERO, models_dir), audio) == []
    word = np.concatenate([np.zeros(RATE, np.float32), espeak("yes"), np.zeros(RATE, np.float32)])
    assert len(run(make_segmenter(SILERO, models_dir), word)) == 1
    assert run(make_segmenter(dataclasses.replace(SILERO, min_speech_ms=1000), models_dir), word) == []


def test_padding_follows_pad_ms(models_dir: Path) -> None:
    audio, [(s, _)] = dialogue(["Please sit down."])
    [padded] = run(make_segmenter(SILERO, models_dir), audio)
    [tight] = run(make_segmenter(dataclasses.replace(SILERO, pad_ms=0), models_dir), audio)
    assert tight.start - padded.start == pytest.approx(0.192, abs=1e-6)  # 6 windows of 32 ms
    assert tight.start >= s - 0.1 and tight.end < padded.end


def test_make_segmenter_needs_the_installed_verified_model(models_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"appliance models install silero-vad"):
        make_segmenter(SILERO, tmp_path)
    shutil.copytree(models_dir / "silero-vad", tmp_path / "silero-vad")
    (tmp_path / "silero-vad" / "silero_vad.onnx").write_bytes(b"truncated")
    with pytest.raises(ModelError, match=r"file silero_vad\.onnx"):
        make_segmenter(SILERO, tmp_path)
    assert isinstance(make_segmenter(VadConfig(engine="energy"), tmp_path), EnergySegmenter)
