"""A short answer inside one utterance told by where it came from: once the speakers'
seats are known, a run of direction chunks from another seat is split off and labelled
as that speaker's, even for two voices the speaker model cannot tell apart."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from appliance.config.schema import DiarizeConfig
from appliance.diarize import DirectionTracker, OnlineDiarizer
from appliance.diarize.bearings import direction_cuts, seats
from appliance.diarize.direction import Direction
from appliance.diarize.prints import new_print
from appliance.hardware.arrays import RESPEAKER_USB_4MIC_V2
from tests.speech import RATE, trimmed
from tests.test_diarize_voices import CLINIC, plane_wave, shared_embedder

CFG = DiarizeConfig()
CLIN_AZ, PAT_AZ = 40.0, 200.0


def _seated(label: str, azimuth: float, times: int = 3, confidence: float = 0.9):
    s = new_print(label, 4)
    for _ in range(times):
        s.add(np.ones(4, np.float32) / 2, 2.0, Direction(azimuth, confidence))
    return s


def test_seats_need_two_speakers_each_keeping_to_one_place_well_apart():
    assert set(seats([_seated("S1", 40), _seated("S2", 200)])) == {"S1", "S2"}
    assert seats([_seated("S1", 40)]) == {}  # one seat is no change
    assert seats([_seated("S1", 40), _seated("S2", 80)]) == {}  # too close for one chunk to tell
    wanders = new_print("S2", 4)
    for az in (0, 120, 240):
        wanders.add(np.ones(4, np.float32) / 2, 2.0, Direction(az, 0.9))
    assert seats([_seated("S1", 40), wanders]) == {}  # no usual place: judged by voice
    assert seats([_seated("S1", 40), _seated("S2", 200, times=1, confidence=0.5)]) == {}  # too little yet


def test_cuts_follow_runs_of_confident_chunks_from_another_seat():
    audio = np.random.default_rng(0).normal(0, 0.1, 6 * RATE).astype(np.float32)  # voiced up to 5.2 s
    audio[int(5.2 * RATE):] *= 0.001

    def track(a: float, b: float) -> Direction:  # 2.0-3.0 s from the patient's seat, a stray chunk at 4.5 s
        mid = (a + b) / 2
        if 2.0 <= mid < 3.0:
            return Direction(PAT_AZ + 5, 0.8)
        if 4.5 <= mid < 4.75:
            return Direction(PAT_AZ, 0.9)
        if 1.0 <= mid < 1.25:
            return Direction(120.0, 0.9)  # between the seats: votes for nobody
        return Direction(CLIN_AZ - 3, 0.7)

    seat_of = {"S1": CLIN_AZ, "S2": PAT_AZ}
    cuts = direction_cuts(audio, 10.0, 1.0, lambda a, b: track(a - 10.0, b - 10.0), seat_of)
    assert len(cuts) == 2 and abs(cuts[0] - 2.0) <= 0.25 and abs(cuts[1] - 3.0) <= 0.25, cuts
    unsure = direction_cuts(audio, 0.0, 1.0, lambda a, b: Direction(track(a, b).azimuth_deg, 0.3), seat_of)
    assert unsure == []  # nothing confident enough to vote
    assert direction_cuts(audio, 0.0, 1.0, track, {"S1": CLIN_AZ}) == []


@pytest.mark.slow
def test_a_short_answer_from_the_other_seat_is_split_off_for_two_similar_voices():
    embedder = shared_embedder()
    tracker = DirectionTracker(RESPEAKER_USB_4MIC_V2, RATE)
    seats_ = {"clinician": (CLIN_AZ, "en+f3"), "patient": (PAT_AZ, "en+f2")}  # voices ~0.7 alike
    t = 0.0

    def play(parts: list[tuple[str, np.ndarray]], seed: int) -> tuple[np.ndarray, float, float]:
        """Record ``parts`` back to back from their seats; returns (mono, start, end)."""
        nonlocal t
        raw = np.concatenate([plane_wave(a, RESPEAKER_USB_4MIC_V2, seats_[who][0], snr_db=25.0, rt60=0.3,
                                         seed=seed + k) for k, (who, a) in enumerate(parts)])
        start = t
        for i in range(0, len(raw), 512):
            tracker.feed(raw[i:i + 512], start + i / RATE)
        t = start + len(raw) / RATE + 1.0
        tracker.feed(np.zeros((RATE, RESPEAKER_USB_4MIC_V2.channels), np.float32), start + len(raw) / RATE)
        return raw[:, 1:5].mean(axis=1), start, start + len(raw) / RATE

    def say(who: str, text: str) -> np.ndarray:
        return trimmed(text, voice=seats_[who][1])

    d = OnlineDiarizer(CFG, embedder)
    voice_only = OnlineDiarizer(replace(CFG, use_direction=False), embedder)
    for k, text in enumerate(CLINIC[:6]):  # three turns each from their seats
        mono, a, b = play([("clinician" if k % 2 == 0 else "patient", say("clinician" if k % 2 == 0 else
                                                                          "patient", text))], 10 * k)
        d.assign(mono, a, b, tracker.direction)
        voice_only.assign(mono, a, b, None)
    pause = np.zeros(int(0.25 * RATE), np.float32)  # shorter than the VAD's: one utterance
    question, answer, more = (say("clinician", "Does it hurt when I press here?"),
                              say("patient", "Yes, a little."),
                              say("clinician", "Alright, we will get an x-ray of that knee today."))
    mono, a, b = play([("clinician", np.concatenate([question, pause])), ("patient", np.concatenate([answer, pause])),
                       ("clinician", more)], 100)
    turns = d.assign(mono, a, b, tracker.direction)
    assert len(turns) == 3, turns
    clin, pat = turns[0].label, turns[1].label
    assert clin != pat and turns[2].label == clin, turns
    answer_from = a + (question.size + pause.size) / RATE
    assert abs(turns[1].start - answer_from) <= 0.3 and abs(turns[1].end - (answer_from + answer.size / RATE)) <= 0.4
    assert len(voice_only.assign(mono, a, b, None)) < 3  # by voice alone the answer is lost in the question
