"""A change of speaker inside one utterance: a patient's short answer right after the
clinician's question (a gap shorter than the VAD's pause) is the patient's, and is stored
as its own line with its own words.

Voices: espeak-ng female (clinician) and the Piper voice (patient), which the speaker
model tells apart (tests/test_diarize_voices.py); real recognition with Whisper tiny.en.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf

from appliance.config import ApplianceConfig
from appliance.config.schema import DiarizeConfig
from appliance.diarize import OnlineDiarizer
from appliance.diarize.changes import print_votes, vote_changes
from appliance.hardware.arrays import RESPEAKER_USB_4MIC_V2
from appliance.speech.engines import build_engine
from appliance.speech.offline import transcribe_file
from tests.daemon import installed_models_dir
from tests.speech import RATE, trimmed
from tests.test_diarize_voices import CLINIC, piper, plane_wave, shared_embedder

EXCHANGES = [  # (question, short answer), said without a pause long enough to end the utterance
    ("Any allergies to medicines that you know of?", "No, none."),
    ("Does it hurt when I press here?", "Yes, a little."),
    ("Is the pain worse at night?", "Not really."),
]


def clinician(text: str) -> np.ndarray:
    return trimmed(text, voice="en+f3")


def patient(text: str) -> np.ndarray:
    audio = piper(text)
    nz = np.flatnonzero(np.abs(audio) > 1e-3)
    return audio[nz[0]:nz[-1] + 1]


def room(audio: np.ndarray) -> np.ndarray:
    """What a desk microphone hears of ``audio`` in a reverberant exam room (RT60 0.5 s, 25 dB SNR)."""
    return plane_wave(audio, RESPEAKER_USB_4MIC_V2, 90.0, snr_db=25.0, rt60=0.5, seed=3)[:, 1:5].mean(axis=1)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.float32)


def known_speakers(d: OnlineDiarizer, *, patient_first: bool = False) -> float:
    """Four turns, two by each, so both speakers are known; returns the time after them."""
    t = 0.0
    for i, text in enumerate(CLINIC[:4]):
        audio = (patient if (i % 2 == 0) == patient_first else clinician)(text)
        d.assign(audio, t, t + audio.size / RATE)
        t += audio.size / RATE + 1.0
    return t


@pytest.mark.slow
def test_a_short_answer_inside_the_question_utterance_is_split_off_with_its_own_label():
    embedder = shared_embedder()
    rng = np.random.default_rng(0)
    for asker, answerer in ((clinician, patient), (patient, clinician)):
        for question, answer in EXCHANGES:
            d = OnlineDiarizer(DiarizeConfig(), embedder)
            t = known_speakers(d, patient_first=asker is patient)
            q, a = asker(question), answerer(answer)
            audio = np.concatenate([silence(0.2), q, silence(0.25), a, silence(0.2)])
            audio += rng.normal(0, 1e-3, audio.size).astype(np.float32)
            change = t + 0.2 + q.size / RATE + 0.125
            turns = d.assign(audio, t, t + audio.size / RATE)
            assert [x.label for x in turns] == ["S1", "S2"], (question, answer, turns)
            assert abs(turns[0].end - change) < 0.15, (question, turns, change)


@pytest.mark.slow
def test_one_voice_with_pauses_inside_is_not_split():
    embedder = shared_embedder()
    for voice in (clinician, patient):
        d = OnlineDiarizer(DiarizeConfig(), embedder)
        t = known_speakers(d)
        for first, second in (("Yes,", "with food."), ("Please take a deep breath in.", "And out."),
                              ("No, none that I know of.", "But penicillin gave me a rash once.")):
            audio = np.concatenate([silence(0.2), voice(first), silence(0.3), voice(second), silence(0.2)])
            turns = d.assign(audio, t, t + audio.size / RATE)
            assert len(turns) == 1, (first, second, turns)
            t += audio.size / RATE + 1.0


@pytest.mark.slow
def test_the_split_answer_is_its_own_stored_line_with_its_own_words(tmp_path):
    """Through the file pipeline (VAD, Whisper, labeller, hindsight at the end): the answer
    said 0.25 s after the question comes back as a separate segment, the patient's."""
    models = installed_models_dir("voicefilter-embedder") and installed_models_dir()
    script = [(clinician, CLINIC[0]), (patient, CLINIC[1]), (clinician, CLINIC[2]), (patient, CLINIC[3])]
    parts = [silence(0.5)]
    for voice, text in script:
        parts += [voice(text), silence(1.0)]
    parts += [clinician(EXCHANGES[0][0]), silence(0.25), patient(EXCHANGES[0][1]), silence(1.0)]
    audio = np.concatenate(parts) + np.random.default_rng(1).normal(0, 1e-3, sum(p.size for p in parts))
    sf.write(tmp_path / "visit.wav", audio.astype(np.float32), RATE, subtype="PCM_16")
    cfg = ApplianceConfig()
    cfg = dataclasses.replace(cfg, paths=dataclasses.replace(cfg.paths, models_dir=str(models)))
    engine, unavailable = build_engine(cfg)
    assert not unavailable, unavailable
    result = transcribe_file(cfg, engine, str(tmp_path / "visit.wav"))
    lines = [(g.speaker, g.text.lower()) for g in result.segments]
    assert len(lines) == 6, lines
    who = {g.speaker: result.speaker_names.get(g.speaker) for g in result.segments}
    clinician_label, patient_label = lines[0][0], lines[1][0]
    assert clinician_label != patient_label and [s for s, _ in lines] == [clinician_label, patient_label] * 3, lines
    # Each line has its own words: the question ends "...that you know of?", the answer is "No, none."
    assert "know" in lines[4][1] and "none" not in lines[4][1], lines
    assert "none" in lines[5][1] and "know" not in lines[5][1], lines
    assert result.segments[4].end <= result.segments[5].start, result.segments
    assert who  # named for display, as in --json output


@pytest.mark.slow
def test_an_answer_the_clinician_talks_over_at_its_end_is_the_patients():
    """Question, a pause too short for the VAD, a 4 s answer, and the clinician starting again
    before the patient has quite finished: one utterance. No boundary has a clean side (the
    talked-over end mixes both voices), but each stretch fits one known speaker: three turns."""
    embedder = shared_embedder()
    for enrolled in (False, True):
        d = OnlineDiarizer(DiarizeConfig(), embedder,
                           enrolled=embedder.embed(np.concatenate([clinician(t) for t in CLINIC[4:6]]))
                           if enrolled else None)
        t = known_speakers(d)
        q = clinician("Are there any other symptoms?")
        a = patient("I have been noticing some chills at night, and I also feel tired most afternoons.")
        more = clinician("That sounds like you have not been feeling well. Let us check your blood count today.")
        talk_over = int(1.0 * RATE)
        tail = np.concatenate([a, np.zeros(more.size - talk_over, np.float32)])
        tail[a.size - talk_over:] += more
        audio = np.concatenate([silence(0.2), q, silence(0.3), tail, silence(0.2)])
        audio = room(audio)
        turns = d.assign(audio, t, t + audio.size / RATE)
        labels = [x.label for x in turns]
        assert len(turns) == 3 and labels[0] == labels[2] != labels[1], (enrolled, turns)
        answer = (t + 0.2 + q.size / RATE + 0.3, t + 0.2 + q.size / RATE + 0.3 + a.size / RATE)
        assert turns[1].start <= answer[0] + 0.5 and turns[1].end >= answer[1] - 1.0, (enrolled, turns, answer)
        if enrolled:
            assert d.display_names()[labels[0]] == "Clinician" and d.display_names()[labels[1]] == "Patient"


@pytest.mark.slow
def test_window_votes_for_known_speakers_change_hands_where_the_speaker_changes():
    """The mechanism behind the split above: each ~1 s window votes for the known speaker it
    fits clearly better; where runs of votes change hands is the change, a lone stray vote
    is not."""
    embedder = shared_embedder()
    prints = np.stack([embedder.embed(np.concatenate([clinician(t) for t in CLINIC[:3]])),
                       embedder.embed(np.concatenate([patient(t) for t in CLINIC[3:6]]))])
    first, second, third = clinician(CLINIC[6]), patient(CLINIC[7] + " " + CLINIC[1]), clinician(CLINIC[1])
    audio = room(np.concatenate([first, second, third]))
    centres, vectors = embedder.window_embeddings(audio)
    votes = print_votes(centres, vectors, prints, ["C", "P"], embedder.window_s / 2)
    assert {v[2] for v in votes} == {"C", "P"}
    changes = [(a + b) / 2 for a, b in vote_changes(votes, 2)]
    truth = [first.size / RATE, (first.size + second.size) / RATE]
    assert len(changes) == 2 and all(abs(c - t) <= 0.8 for c, t in zip(changes, truth, strict=True)), (changes, truth)
    stray = [(0.0, 1.0, "C"), (1.0, 2.0, "C"), (2.0, 3.0, "P"), (3.0, 4.0, "C"), (4.0, 5.0, "C")]
    assert vote_changes(stray, 2) == []
    assert vote_changes([*stray, (5.0, 6.0, "P"), (6.5, 7.5, "P")], 2) == [(5.0, 5.0)]
