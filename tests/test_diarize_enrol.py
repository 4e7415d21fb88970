"""Clinician enrolment: a voice print from ~15-20 s of real speech, stored as nothing but numbers."""

from __future__ import annotations

import json
import stat

import numpy as np
import pytest
from scipy.signal import fftconvolve

from appliance.config.schema import DiarizeConfig
from appliance.diarize import EnrolmentError, OnlineDiarizer, enrol, load_enrolment, save_enrolment
from tests.speech import RATE, trimmed
from tests.test_diarize_voices import CLINIC, female, male, piper, recordings, shared_embedder
from tests.test_panel_browser_enrol import READING


@pytest.mark.slow
def test_enrolled_clinician_is_recognised_and_only_the_print_is_stored(tmp_path):
    embedder = shared_embedder()
    reader = recordings("librivox")
    enrolment_audio = np.concatenate(reader[:3])  # 15 s of the clinician reading
    vector = enrol(enrolment_audio, embedder)
    path = tmp_path / "state" / "enrolment" / "clinician.json"
    save_enrolment(path, vector, "Dr Example", model=embedder.name)

    # Only the voice print: a small 0600 JSON file of 256 numbers, a name, a date, the model.
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_size < 8_000 < enrolment_audio.nbytes // 10
    data = json.loads(path.read_text())
    assert set(data) == {"format", "clinician", "model", "created", "dim", "vector"}
    assert data["clinician"] == "Dr Example" and data["model"] == "voicefilter-embedder"
    assert len(data["vector"]) == data["dim"] == 256 and all(isinstance(x, float) for x in data["vector"])
    assert list(path.parent.iterdir()) == [path]  # no temporary or audio file left beside it

    loaded = load_enrolment(path, model=embedder.name)
    np.testing.assert_allclose(loaded.vector, vector, atol=1e-6)
    assert loaded.clinician == "Dr Example" and loaded.created.startswith("20")

    # A visit: the patient speaks first, the clinician later, in sentences not enrolled.
    d = OnlineDiarizer(DiarizeConfig(), embedder, enrolled=loaded.vector)
    script = [("patient", piper(CLINIC[0])), ("clinician", reader[3]), ("patient", piper(CLINIC[1])),
              ("clinician", reader[4]), ("other", female(CLINIC[2])), ("patient", piper(CLINIC[2]))]
    t, labels = 0.0, []
    for _, audio in script:
        turns = d.assign(audio, t, t + audio.size / RATE)
        labels.append(turns[0].label)
        t += audio.size / RATE + 1.0
    names = [d.display_name(label) for label in labels]
    assert names == ["Patient", "Clinician", "Patient", "Clinician", "Other", "Patient"], (labels, names)
    assert labels[1] == labels[3] == "S1"
    fixed = d.recluster()
    assert [d.display_name(fixed[i]) for i in range(len(script))] == names


def test_enrolment_refuses_what_it_cannot_trust():
    embedder = shared_embedder()
    reader = recordings("librivox")
    with pytest.raises(EnrolmentError, match=r"Only \d+ seconds of speech were heard; at least 8"):
        enrol(reader[1], embedder)  # 3 s
    with pytest.raises(EnrolmentError, match="seconds of speech"):
        enrol(np.zeros(20 * RATE, np.float32), embedder)
    two_people = np.concatenate([reader[0], reader[2], piper(CLINIC[0]), piper(CLINIC[1]), piper(CLINIC[2])])
    with pytest.raises(EnrolmentError, match="More than one voice"):
        enrol(two_people, embedder)
    loud = np.clip(np.concatenate(reader[:3]) * 20, -1, 1)
    with pytest.raises(EnrolmentError, match="too loud"):
        enrol(loud, embedder)


def with_noise(audio: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """``audio`` plus white noise ``snr_db`` below its mean power."""
    rng = np.random.default_rng(seed)
    sd = np.sqrt(np.mean(audio ** 2) / 10 ** (snr_db / 10))
    return audio + rng.normal(0, sd, audio.size).astype(np.float32)


@pytest.mark.slow
def test_a_sample_of_two_people_taking_turns_is_refused():
    """Two voices sentence by sentence (the panel's reading text), and a real reader with a
    Piper voice answering between his paragraphs: each person alone is accepted, mixed refused."""
    embedder = shared_embedder()
    woman, man = [female(t) for t in READING], [male(t) for t in READING]
    reader = recordings("librivox")
    for alone in (np.concatenate(woman), np.concatenate(man), np.concatenate(reader[:3]),
                  np.concatenate([piper(t) for t in READING])):
        assert enrol(alone, embedder).shape == (256,)
    mixed = {
        "alternating": np.concatenate([woman[0], man[1], woman[2], man[3], woman[4]]),
        "one sentence of five by another": np.concatenate([woman[0], woman[1], man[2], woman[3], woman[4]]),
        "real reader and Piper": np.concatenate([reader[0], piper(CLINIC[0]), reader[1], piper(CLINIC[1]),
                                                 reader[2]]),
    }
    for what, audio in mixed.items():
        with pytest.raises(EnrolmentError, match=r"More than one voice .* Please enrol alone"):
            enrol(audio, embedder)
            pytest.fail(f"accepted: {what}")


def test_a_noisy_room_is_refused_with_what_to_do():
    embedder = shared_embedder()
    reading = np.concatenate(recordings("librivox")[:3])
    assert enrol(with_noise(reading, 25), embedder).shape == (256,)
    # Read on without stopping in a reverberant room, noise 20 dB down: fine (the quiet frames
    # between words, not a percentile that is still speech or its echo, are the background).
    rng = np.random.default_rng(7)
    t = np.arange(int(0.6 * RATE)) / RATE
    room = rng.normal(0, 1, t.size) * np.exp(-6.9 * t / 0.6)  # RT60 0.6 s
    room[0] = 8.0  # the direct sound
    far = with_noise(fftconvolve(np.concatenate([trimmed(x, voice="en+f3") for x in READING]), room)[:-t.size],
                     20, seed=7)
    far = (0.3 * far / np.max(np.abs(far))).astype(np.float32)
    assert enrol(far, embedder).shape == (256,)
    for snr in (10, 5):
        with pytest.raises(EnrolmentError, match=r"too noisy: the voice was only \d+ dB above the background.*"
                                                 r"quiet room"):
            enrol(with_noise(reading, snr), embedder)


def test_loading_a_missing_damaged_or_foreign_enrolment_says_so(tmp_path):
    path = tmp_path / "clinician.json"
    with pytest.raises(EnrolmentError, match="has not enrolled"):
        load_enrolment(path)
    path.write_text("{not json")
    with pytest.raises(EnrolmentError, match="unreadable"):
        load_enrolment(path)
    path.write_text(json.dumps({"vector": [0.0] * 256}))
    with pytest.raises(EnrolmentError, match="damaged"):
        load_enrolment(path)
    save_enrolment(path, np.ones(256), "Dr Example", model="other-model")
    with pytest.raises(EnrolmentError, match="enrol again"):
        load_enrolment(path, model="voicefilter-embedder")
    assert load_enrolment(path).vector.shape == (256,)
    with pytest.raises(ValueError):
        save_enrolment(path, np.array([np.nan] * 256), "Dr Example")
