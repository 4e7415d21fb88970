"""The diarization benchmark's dev and test splits share no voice, dialogue set or room, and
the voices in each are really different people to the speaker model."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from appliance.diarize import pool
from benchmarks.rooms import SEED_BASE, room_specs, split_voices
from benchmarks.voices import DEV_VOICES, TEST_VOICES, VOICES, speak
from tests.test_diarize_voices import shared_embedder

SENTENCES = ["The north wind and the sun were disputing which was the stronger, when a traveler came along.",
             "They agreed that the one who first made the traveler take off his cloak should be considered stronger."]


def test_dev_and_test_share_no_voice_and_no_room():
    assert not set(DEV_VOICES) & set(TEST_VOICES) and VOICES.keys() == DEV_VOICES.keys() | TEST_VOICES.keys()
    assert split_voices("dev") <= set(DEV_VOICES) and split_voices("test") == set(TEST_VOICES)
    dev, test = room_specs("dev", quick=False), room_specs("test", quick=False)
    assert not {s.seed for s in dev} & {s.seed for s in test} and SEED_BASE["dev"] != SEED_BASE["test"]
    assert all(s.name.startswith("test-") for s in test) and all(s.name.startswith("dev-") for s in dev)


@pytest.mark.slow
def test_the_test_voices_are_different_people_to_the_speaker_model():
    embedder = shared_embedder()
    prints = {name: pool(np.stack([embedder.embed(speak(v, s)) for s in SENTENCES])) for name, v in TEST_VOICES.items()}
    alike = {(a, b): round(float(prints[a] @ prints[b]), 2) for a, b in combinations(prints, 2)}
    assert max(alike.values()) < 0.75, sorted(alike.items(), key=lambda x: -x[1])[:3]
