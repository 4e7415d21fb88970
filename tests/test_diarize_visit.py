"""Diarization on the device's own data path: controller + store, file capture, `capture.array`.

Real parts throughout: the voicefilter-embedder model, file capture, the energy VAD, a real
SQLite store. Recognition is off (`asr.engine = "none"`): these tests are about who spoke.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from appliance.asr.factory import make_engine
from appliance.config import parse_config
from appliance.config.rules import check
from appliance.config.schema import AsrConfig
from appliance.daemon.room import build_controller
from appliance.diarize import DirectionTracker, enrol, save_enrolment
from appliance.diarize.visit import enrolment_path
from appliance.hardware.arrays import ARRAY_KEYS, RESPEAKER_USB_4MIC_V2, array_for_capture
from appliance.speech.offline import transcribe_file
from tests.speech import RATE, espeak, file_direction_tracker
from tests.test_diarize_voices import CLINIC, MODEL, accuracy, embedder_dir, piper, plane_wave, recordings


def _config(tmp_path: Path, wav: Path, **capture: object):
    return parse_config({
        "paths": {"state_dir": str(tmp_path / "state"), "models_dir": str(embedder_dir().parent)},
        "capture": {"source": "file", "file": str(wav), "realtime": False, **capture},
        "daemon": {"control_socket": str(tmp_path / "ctl.sock")},
        "asr": {"engine": "none"},
        "vad": {"engine": "energy"},
        "diarize": {"model": MODEL},
    })


def _visit(tmp_path: Path, turns: list[np.ndarray], gap_s: float = 1.2) -> Path:
    rng = np.random.default_rng(0)
    parts = [np.zeros(int(gap_s * RATE), np.float32)]
    for audio in turns:
        parts += [audio, np.zeros(int(gap_s * RATE), np.float32)]
    audio = np.concatenate(parts)
    audio += rng.normal(0, 10 ** (-60 / 20), audio.size).astype(np.float32)
    wav = tmp_path / "visit.wav"
    sf.write(wav, audio, RATE, subtype="PCM_16")
    return wav


def _record(controller, name: str):  # type: ignore[no-untyped-def]
    events: list[str] = []
    controller.add_listener(lambda kind, _data: events.append(kind))
    with controller.visit.running():
        session = controller.start(name=name)
        assert controller.wait_source_finished(60)
        controller.stop()
    return session, events


@pytest.mark.slow
def test_enrolment_round_trip_labels_a_new_visit_and_a_swap_fix_is_a_revision(tmp_path):
    reader = recordings("librivox")  # the clinician: a real person
    wav = _visit(tmp_path, [piper(CLINIC[0]), reader[3], piper(CLINIC[1]), reader[4], piper(CLINIC[6])])
    truth = ["Patient", "Clinician", "Patient", "Clinician", "Patient"]
    cfg = _config(tmp_path, wav)

    # Settings → enrol: ~15 s of the clinician reading other sentences; only the print is saved.
    controller = build_controller(cfg)
    embedder = controller.speakers.embedder
    assert embedder is not None, controller.speakers.unavailable
    save_enrolment(enrolment_path(cfg), enrol(np.concatenate(reader[:3]), embedder), "Dr Example",
                   model=embedder.name)
    assert [p.name for p in enrolment_path(cfg).parent.iterdir()] == ["clinician.json"]

    session, events = _record(controller, "ENROLLED")  # a new visit picks the enrolment up
    store = controller.store
    assert "relabelled" in events
    assert store.speakers(session.id) == {"S1": "Clinician", "S2": "Patient"}
    segments = store.read_transcript(session.id, actor="test", reason="check labels")
    assert [g.speaker_name for g in segments] == truth
    before = store.get_session(session.id).revision

    # The clinician taps "swap" on the panel: one new revision, the old one still readable.
    after = store.swap_speakers(session.id, "S1", "S2", actor="clinician")
    assert after == before + 1
    swapped = store.read_transcript(session.id, actor="test", reason="check swap")
    assert [g.speaker for g in swapped] == ["S1" if g.speaker == "S2" else "S2" for g in segments]
    assert [g.speaker_name for g in swapped] == ["Clinician" if n == "Patient" else "Patient" for n in truth]
    old = store.read_transcript(session.id, actor="test", reason="check history", revision=before)
    assert [g.speaker for g in old] == [g.speaker for g in segments]
    assert "edit:swap-speakers" in [e.action for e in store.audit_events(session.id)]
    store.close()


def test_an_all_silent_visit_with_diarization_on_stores_nothing_and_says_so(tmp_path):
    wav = tmp_path / "silence.wav"
    rng = np.random.default_rng(3)
    sf.write(wav, rng.normal(0, 10 ** (-70 / 20), RATE * 5).astype(np.float32), RATE)
    controller = build_controller(_config(tmp_path, wav))
    assert controller.speakers.embedder is not None  # labelling is really on
    session, events = _record(controller, "QUIET")
    store = controller.store
    assert "no_speech" in events
    assert store.segment_count(session.id) == 0 and store.speakers(session.id) == {}
    assert store.read_transcript(session.id, actor="test", reason="check") == []
    assert store.get_session(session.id).state == "stopped"
    store.close()


@pytest.mark.slow
def test_capture_array_key_names_the_geometry_of_a_replayed_recording(tmp_path):
    assert set(ARRAY_KEYS) == {"respeaker-usb-4mic", "respeaker-2mic-hat", "minidsp-uma8"}
    assert array_for_capture("respeaker-usb-4mic", "visit.wav") is RESPEAKER_USB_4MIC_V2
    assert array_for_capture("auto", "visit.wav") is None  # a file's name says nothing about the array
    assert array_for_capture("none", "ReSpeaker 4 Mic Array (UAC1.0)") is None
    assert array_for_capture("auto", "ReSpeaker 4 Mic Array (UAC1.0)") is RESPEAKER_USB_4MIC_V2
    problems = [str(p) for p in check(parse_config({"capture": {"array": "respeaker-9mic"}}))]
    assert any(p.startswith("capture.array: unknown microphone array 'respeaker-9mic'") for p in problems), problems

    # Two women whose voices the model finds alike, on opposite sides of the array (6-channel
    # recording as the ReSpeaker firmware delivers it), replayed from a file.
    a = [espeak(t, "en+f3") for t in CLINIC[0:8:2]]
    b = [espeak(t, "en+f2") for t in CLINIC[1:8:2]]
    utterances = [x for pair in zip(a, b, strict=True) for x in pair]
    gap = np.zeros((int(1.2 * RATE), RESPEAKER_USB_4MIC_V2.channels), np.float32)
    parts = [gap]
    for k, u in enumerate(utterances):
        raw = plane_wave(u, RESPEAKER_USB_4MIC_V2, 45.0 if k % 2 == 0 else 225.0, snr_db=25.0, rt60=0.3, seed=k)
        parts += [raw, gap]
    array_wav = tmp_path / "array.wav"
    sf.write(array_wav, np.concatenate(parts) * 0.8, RATE, subtype="PCM_16")
    mono_wav = tmp_path / "mono.wav"
    sf.write(mono_wav, np.concatenate(parts)[:, 1:5].mean(axis=1), RATE, subtype="PCM_16")

    mics = {"asr_channels": [1, 2, 3, 4]}
    named = _config(tmp_path, array_wav, array="respeaker-usb-4mic", **mics)
    assert isinstance(file_direction_tracker(named, str(array_wav)), DirectionTracker)
    assert file_direction_tracker(_config(tmp_path, array_wav, **mics), str(array_wav)) is None  # auto
    assert file_direction_tracker(_config(tmp_path, array_wav, array="none", **mics), str(array_wav)) is None
    mono = _config(tmp_path, mono_wav, array="respeaker-usb-4mic")
    assert file_direction_tracker(mono, str(mono_wav)) is None  # mono input: no direction, still labels

    engine = make_engine(AsrConfig(engine="none"), named.paths.models_dir)
    truth = ["left", "right"] * 4
    with_array = [g.speaker for g in transcribe_file(named, engine, str(array_wav)).segments]
    assert len(with_array) == len(truth) and accuracy(truth, with_array) == 1.0, with_array
    voice_only = [g.speaker for g in transcribe_file(mono, engine, str(mono_wav)).segments]
    assert len(voice_only) == len(truth) and "" not in voice_only  # mono: labelled by voice alone

    # The daemon's controller attaches the tracker the same way for a file source.
    controller = build_controller(named)
    with controller.visit.running():
        controller.start(name="ARRAY")
        assert controller.wait_source_finished(60)
        assert isinstance(controller.visit.pipeline.tracker, DirectionTracker)
        session = controller.stop()
    labels = [g.speaker for g in controller.store.read_transcript(session.id, actor="test", reason="check")]
    assert accuracy(truth, labels) == 1.0, labels
    controller.store.close()


@pytest.mark.slow
def test_a_visit_resumed_after_a_crash_keeps_its_speaker_labels(tmp_path):
    """The labeller's memory (voice prints only) survives a crash with the visit: after recovery the
    same voices get the same labels, and Stop re-clusters the whole visit, then forgets the prints."""
    reader = recordings("librivox")
    before_crash = _visit(tmp_path, [piper(CLINIC[0]), reader[3], piper(CLINIC[1])]).rename(tmp_path / "before.wav")
    after_crash = _visit(tmp_path, [reader[4], piper(CLINIC[6]), reader[0]]).rename(tmp_path / "after.wav")
    cfg = _config(tmp_path, before_crash)

    first = build_controller(cfg)
    with first.visit.running():
        session = first.start(name="CRASH")
        assert first.wait_source_finished(60) and first.visit.drain(60)
    first.visit.close()  # the process dies here: no stop, no relabel, the visit left "recording"
    labels_before = [g.speaker for g in first.store.read_transcript(session.id, actor="test", reason="check")]
    assert len(labels_before) == 3 and labels_before[0] == labels_before[2] != labels_before[1]
    assert len(first.store.load_voiceprints(session.id)) >= 3

    cfg2 = _config(tmp_path, after_crash)
    second = build_controller(cfg2)  # the restarted daemon
    assert second.recover() == [session.id]
    with second.visit.running():
        second.resume()
        assert second.wait_source_finished(60)
        second.stop()
    labels = [g.speaker for g in second.store.read_transcript(session.id, actor="test", reason="check")]
    assert len(labels) == 6
    piper_label, reader_label = labels[0], labels[1]
    assert piper_label != reader_label
    assert labels == [piper_label, reader_label, piper_label, reader_label, piper_label, reader_label]
    assert second.store.load_voiceprints(session.id) == []  # forgotten once the visit is stopped
    second.store.close()
    first.store.close()
