"""The clustering at Stop on many synthetic voice prints: scale, bounds and label stability.

Voice prints are simulated as unit vectors around per-speaker centres (centres 0.4 alike,
turns ~0.8 alike to their centre, as the real model's prints of short turns are), so a
visit of thousands of turns runs in milliseconds; the real-model cases are in
test_diarize_online.py.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from appliance.config.schema import DiarizeConfig
from appliance.diarize.direction import Direction
from appliance.diarize.recluster import relabel

CFG = DiarizeConfig()


def _speakers(rng: np.random.Generator, k: int, dim: int = 256, alike: float = 0.4) -> np.ndarray:
    base = rng.normal(size=dim)
    base /= np.linalg.norm(base)
    out = []
    for _ in range(k):
        own = rng.normal(size=dim)
        own -= (own @ base) * base
        out.append(np.sqrt(alike) * base + np.sqrt(1 - alike) * own / np.linalg.norm(own))
    return np.array(out)


def _turns(rng: np.random.Generator, centres: np.ndarray, n: int, alike: float = 0.8):
    who = rng.integers(0, len(centres), n)
    noise = rng.normal(size=(n, centres.shape[1]))
    noise -= np.sum(noise * centres[who], axis=1, keepdims=True) * centres[who]
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    return (np.sqrt(alike) * centres[who] + np.sqrt(1 - alike) * noise).astype(np.float32), who


def test_a_two_hour_visit_is_reclustered_quickly_and_fixes_wrong_live_labels():
    rng = np.random.default_rng(0)
    vectors, who = _turns(rng, _speakers(rng, 3), 2000)
    truth = [f"S{w + 1}" for w in who]
    wrong = rng.random(len(who)) < 0.05
    live = [f"S{(w + 1) % 3 + 1}" if bad else t for t, w, bad in zip(truth, who, wrong, strict=True)]
    directions = [Direction(float((30, 150, 270)[w] + rng.normal(0, 8)) % 360, 0.7) for w in who]
    t0 = time.perf_counter()
    fixed = relabel(CFG, vectors, rng.uniform(1, 6, len(who)), directions, live)
    assert time.perf_counter() - t0 < 5.0
    assert fixed == truth  # every wrong live label corrected, every right one kept


def test_hindsight_at_linkage_scale_with_direction():
    rng = np.random.default_rng(1)
    vectors, who = _turns(rng, _speakers(rng, 2, alike=0.75), 400)  # similar voices...
    truth = [f"S{w + 1}" for w in who]
    directions = [Direction(float((60, 240)[w] + rng.normal(0, 10)) % 360, 0.8) for w in who]  # ...apart
    live = ["S1"] * len(who)  # live labelling merged them
    fixed = relabel(CFG, vectors, rng.uniform(1, 6, len(who)), directions, live)
    naming = {"S1": fixed[int(np.argmax(who == 0))], "S2": fixed[int(np.argmax(who == 1))]}
    assert naming["S1"] != naming["S2"]
    assert np.mean([naming[t] == f for t, f in zip(truth, fixed, strict=True)]) >= 0.98


def test_one_talker_stays_one_speaker_despite_min_speakers():
    rng = np.random.default_rng(2)
    vectors, _ = _turns(rng, _speakers(rng, 1), 60)  # a clinician dictating alone
    assert set(relabel(CFG, vectors, rng.uniform(1, 6, 60), [None] * 60, ["S1"] * 60)) == {"S1"}


def test_min_and_max_speakers_bound_the_result():
    rng = np.random.default_rng(3)
    vectors, who = _turns(rng, _speakers(rng, 4), 120)
    secs = rng.uniform(1, 6, 120)
    assert len(set(relabel(replace(CFG, max_speakers=2), vectors, secs, [None] * 120, ["S1"] * 120))) == 2
    # two clearly different voices that live labelling merged are split when 2 are expected
    vectors, who = _turns(rng, _speakers(rng, 2, alike=0.3), 40, alike=0.7)
    cfg = replace(CFG, threshold=0.2, min_speakers=2)  # a threshold too lax to split them itself
    fixed = relabel(cfg, vectors, rng.uniform(1, 6, 40), [None] * 40, ["S1"] * 40)
    assert len(set(fixed)) == 2
    assert all((f == fixed[0]) == (w == who[0]) for f, w in zip(fixed, who, strict=True))


def test_the_enrolled_clinician_keeps_s1_and_a_silent_one_takes_no_turns():
    rng = np.random.default_rng(4)
    centres = _speakers(rng, 3)
    vectors, who = _turns(rng, centres, 90)
    live = [f"S{w + 1}" for w in who]
    fixed = relabel(CFG, vectors, rng.uniform(1, 6, 90), [None] * 90, live, enrolled=centres[0])
    assert fixed == live
    others = who != 0  # the clinician never spoke: nobody else may become the clinician
    fixed = relabel(CFG, vectors[others], rng.uniform(1, 6, int(others.sum())), [None] * int(others.sum()),
                    [f"S{w + 1}" for w in who[others]], enrolled=centres[0])
    assert "S1" not in fixed and len(set(fixed)) == 2
