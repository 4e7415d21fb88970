"""Online diarization with the real speaker model on clearly different real and synthetic voices."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from appliance.config.schema import DiarizeConfig
from appliance.diarize import DirectionTracker, OnlineDiarizer, Turn, estimate_direction
from appliance.hardware.arrays import RESPEAKER_USB_4MIC_V2
from tests.speech import RATE, espeak
from tests.test_diarize_voices import (
    CLINIC,
    accuracy,
    female,
    male,
    piper,
    plane_wave,
    recordings,
    shared_embedder,
)

CFG = DiarizeConfig()


def _run(diarizer: OnlineDiarizer, utterances: list[np.ndarray], directions=None, gap_s: float = 1.0):
    """Feed utterances on one timeline; returns the first turn of each (None if no turn)."""
    out: list[Turn | None] = []
    t = 0.0
    for k, audio in enumerate(utterances):
        end = t + audio.size / RATE
        turns = diarizer.assign(audio, t, end, None if directions is None else directions[k])
        out.append(turns[0] if turns else None)
        t = end + gap_s
    return out


def _labels(turns: list[Turn | None]) -> list[str]:
    return [t.label if t else "-" for t in turns]


def test_two_people_taking_turns_keep_their_labels():
    embedder = shared_embedder()
    clinician = [piper(t) for t in CLINIC[:5]]
    patient = list(recordings("librivox"))
    utterances = [a for pair in zip(clinician, patient, strict=True) for a in pair]
    truth = ["clinician", "patient"] * 5
    d = OnlineDiarizer(CFG, embedder)
    turns = _run(d, utterances)
    labels = _labels(turns)
    assert accuracy(truth, labels) >= 0.9, labels
    assert set(labels) == {"S1", "S2"} and labels[0] == "S1"
    assert d.display_names() == {"S1": "Speaker 1", "S2": "Speaker 2"}
    first = turns[0]
    assert first is not None and first.start == 0.0 and first.end == round(utterances[0].size / RATE, 3)
    assert [t.index for t in turns if t] == list(range(10))
    # hindsight agrees with what was shown live: no label changes at Stop
    assert d.recluster() == {i: lab for i, lab in enumerate(labels)}


def test_three_people_get_three_labels():
    embedder = shared_embedder()
    voices = {"piper": [piper(t) for t in CLINIC[:3]], "reader": list(recordings("librivox")[:3]),
              "woman": [female(t) for t in CLINIC[3:6]]}
    utterances, truth = [], []
    for k in range(3):
        for name, audio in voices.items():
            utterances.append(audio[k])
            truth.append(name)
    d = OnlineDiarizer(CFG, embedder)
    labels = _labels(_run(d, utterances))
    assert sorted(set(labels)) == ["S1", "S2", "S3"]
    assert accuracy(truth, labels) >= 0.9, labels
    fixed = d.recluster()
    assert accuracy(truth, [fixed[i] for i in range(len(truth))]) >= 0.9


def test_mono_capture_works_without_direction():
    """A plain USB microphone: no direction at all, labels by voice alone."""
    embedder = shared_embedder()
    reader, woman = recordings("librivox"), [female(t) for t in CLINIC[:2]]
    tracker = DirectionTracker(RESPEAKER_USB_4MIC_V2, RATE)
    tracker.feed(reader[0][:, None], 0.0)  # a mono block: not this array, ignored
    assert estimate_direction(reader[0][:, None], RATE, RESPEAKER_USB_4MIC_V2) is None
    d = OnlineDiarizer(CFG, embedder)
    labels = _labels(_run(d, [reader[1], woman[0], reader[4], woman[1]], [tracker.direction] * 4))
    assert labels == ["S1", "S2", "S1", "S2"]


@pytest.mark.slow
def test_direction_separates_two_similar_voices():
    """Two women whose voices the model finds alike (cosine ~0.7, above the new-speaker
    threshold) sit on opposite sides of the 4-mic array: voice alone merges them, the
    direction of arrival keeps them apart."""
    embedder = shared_embedder()
    a = [espeak(t, "en+f3") for t in CLINIC[0:8:2]]
    b = [espeak(t, "en+f2") for t in CLINIC[1:8:2]]
    utterances = [x for pair in zip(a, b, strict=True) for x in pair]
    truth = ["left", "right"] * 4
    raws = [plane_wave(u, RESPEAKER_USB_4MIC_V2, 45.0 if k % 2 == 0 else 225.0, snr_db=20.0, rt60=0.3, seed=k)
            for k, u in enumerate(utterances)]
    directions = [estimate_direction(r, RATE, RESPEAKER_USB_4MIC_V2) for r in raws]
    mono = [r[:, 1:5].mean(axis=1) for r in raws]  # what recognition and the voice print hear

    voice_only = _labels(_run(OnlineDiarizer(replace(CFG, use_direction=False), embedder), mono, directions))
    assert accuracy(truth, voice_only) <= 0.6, voice_only  # the case voice alone gets wrong
    fused = _labels(_run(OnlineDiarizer(CFG, embedder), mono, directions))
    assert accuracy(truth, fused) == 1.0, fused


def test_a_change_of_speaker_inside_one_utterance_is_split_near_the_boundary():
    embedder = shared_embedder()
    reader = recordings("librivox")
    cases = [(piper(CLINIC[0]), reader[2]),  # no pause between the two people
             (reader[0][: int(4.2 * RATE)], female(CLINIC[4])),
             (male(CLINIC[6]), piper(CLINIC[3]))]
    for first, second in cases:
        first = first[: np.flatnonzero(np.abs(first) > 0.01)[-1]]  # cut the trailing silence
        second = second[np.flatnonzero(np.abs(second) > 0.01)[0]:]
        d = OnlineDiarizer(CFG, embedder)
        turns = d.assign(np.concatenate([first, second]), 10.0, 10.0 + (first.size + second.size) / RATE)
        assert len(turns) == 2 and turns[0].label != turns[1].label, turns
        assert abs(turns[0].end - (10.0 + first.size / RATE)) <= 0.5, (turns, 10.0 + first.size / RATE)
        assert turns[0].end == turns[1].start and turns[1].index == turns[0].index + 1
    # one person reading on for 7 s is not split
    assert len(OnlineDiarizer(CFG, embedder).assign(reader[0], 0.0, reader[0].size / RATE)) == 1
    # with change detection off, the same mixed utterance stays one turn
    off = OnlineDiarizer(replace(CFG, change_detection=False), embedder)
    assert len(off.assign(np.concatenate([reader[0], female(CLINIC[4])]), 0.0, 12.0)) == 1


def test_recluster_corrects_an_early_mislabel():
    """The patient's second turn is a short clip that does not yet match their one-turn print,
    so it is given a new label live; at Stop every patient turn ends up under one label."""
    embedder = shared_embedder()
    reader, cards = recordings("librivox"), recordings("cards")
    utterances = [reader[0], cards[0], reader[1], cards[4][int(0.25 * RATE):int(1.55 * RATE)], reader[2],
                  cards[1], reader[3], cards[2], reader[4], cards[3]]
    truth = ["reader", "cards"] * 5
    d = OnlineDiarizer(CFG, embedder)
    live = _labels(_run(d, utterances))
    assert live[3] not in (live[0], live[1]), f"scenario gave no early mislabel any more: {live}"
    fixed = d.recluster()
    relabelled = [fixed[i] for i in range(len(truth))]
    assert accuracy(truth, relabelled) == 1.0, relabelled
    assert len(set(relabelled)) == 2
    assert all(fixed[i] == live[i] for i in (0, 2, 4, 6, 8))  # the right labels stay put
    assert [t.label for t in d.turns] == relabelled
    # display names follow first appearance, whatever the internal numbers became
    assert sorted(d.display_names().values()) == ["Speaker 1", "Speaker 2"]
    assert d.display_name(relabelled[0]) == "Speaker 1"


def test_silence_noise_and_crumbs_give_no_turns():
    embedder = shared_embedder()
    rng = np.random.default_rng(0)
    d = OnlineDiarizer(CFG, embedder)
    assert d.assign(np.zeros(3 * RATE, np.float32), 0.0, 3.0) == []
    assert d.assign(rng.normal(0, 0.003, 3 * RATE).astype(np.float32), 3.0, 6.0) == []  # room hum
    assert d.assign(male(CLINIC[0])[: int(0.3 * RATE)], 6.0, 6.3) == []  # too short to tell
    assert d.assign(np.zeros(0, np.float32), 7.0, 7.0) == []
    assert d.recluster() == {} and d.display_names() == {}
    turns = d.assign(recordings("librivox")[1], 8.0, 11.0)  # and it goes on working
    assert [t.label for t in turns] == ["S1"]


def test_max_speakers_is_respected_live_and_at_stop():
    embedder = shared_embedder()
    voices = [[piper(t) for t in CLINIC[:2]], list(recordings("librivox")[:2]), [female(t) for t in CLINIC[2:4]]]
    utterances = [v[k] for k in range(2) for v in voices]
    d = OnlineDiarizer(replace(CFG, max_speakers=2), embedder)
    labels = _labels(_run(d, utterances))
    assert set(labels) <= {"S1", "S2"} and "-" not in labels
    assert set(d.recluster().values()) <= {"S1", "S2"}
