"""`appliance transcribe`: the daemon's pipeline on a file, speakers labelled, clear errors."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest

from appliance.demo import bundled_recording
from tests.daemon import installed_models_dir

pytestmark = pytest.mark.slow  # a browser, a broker or a daemon process: make check leaves it to make test


def transcribe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appliance", "--config", "/dev/null", "transcribe", *args],
                          capture_output=True, text=True, timeout=300)


def test_json_segments_with_two_alternating_speakers():
    models = installed_models_dir()
    out = transcribe("--json", "--models-dir", str(models), str(bundled_recording()))
    assert out.returncode == 0, out.stderr
    segments = json.loads(out.stdout)
    assert [set(s) for s in segments] == [{"start", "end", "speaker", "speaker_uncertain", "text"}] * len(segments)
    assert len(segments) == 10  # ten turns: clinician, patient, … a pause (the exam), clinician, patient, clinician
    speakers = [s["speaker"] for s in segments]
    clinician, patient = speakers[0], speakers[1]
    assert speakers == [clinician, patient] * 3 + [clinician] * 2 + [patient, clinician] and clinician != patient
    assert all(a["end"] <= b["start"] for a, b in itertools.pairwise(segments))
    assert max(b["start"] - a["end"] for a, b in itertools.pairwise(segments)) > 5  # the examination
    text = " ".join(s["text"] for s in segments).lower()
    assert all(w in text for w in ("what brings you in today", "sore throat", "ibuprofen", "rapid strep test"))
    assert not any(s["speaker_uncertain"] for s in segments)  # two clearly different voices: no doubt


def test_missing_or_broken_audio_and_missing_model_exit_2(tmp_path):
    out = transcribe(str(tmp_path / "none.wav"))
    assert out.returncode == 2 and "none.wav" in out.stderr
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    out = transcribe("--models-dir", str(installed_models_dir()), str(broken))
    assert out.returncode == 2 and "broken.wav" in out.stderr
    out = transcribe("--models-dir", str(tmp_path), str(bundled_recording()))
    assert out.returncode == 2 and "appliance models install" in out.stderr


def test_the_refined_pass_prints_its_text_and_a_model_it_cannot_load_is_named():
    models = installed_models_dir()
    out = transcribe("--json", "--models-dir", str(models), "--refine", "whisper-tiny.en", str(bundled_recording()))
    assert out.returncode == 0, out.stderr
    segments = json.loads(out.stdout)
    assert len(segments) == 10 and all(s["text"] for s in segments)
    assert {k for s in segments for k in s} <= {"start", "end", "speaker", "speaker_uncertain", "text", "live_text"}
    assert all(s["live_text"] != s["text"] for s in segments if "live_text" in s)  # only changed lines carry it
    text = " ".join(s["text"] for s in segments).lower().replace("-", " ")  # "rapid-strep" on some CPUs
    assert all(w in text for w in ("sore throat", "ibuprofen", "rapid strep test")), text
    bad = transcribe("--models-dir", str(models), "--refine", "no-such-model", str(bundled_recording()))
    assert bad.returncode == 2 and "asr.refine_model" in bad.stderr and "no-such-model" in bad.stderr, bad.stderr
