"""When the labeller is unsure it says so: a turn of a second voice too like the first
(two espeak-ng women, no direction) is flagged uncertain rather than confidently merged;
the same voices with a confident direction, and clearly different voices, are not flagged.
The flag is stored with the segment, cleared once a person decides (or the hindsight pass
relabels the line), and undo brings it back."""

from __future__ import annotations

from dataclasses import replace

import pytest

from appliance.diarize import OnlineDiarizer, estimate_direction
from appliance.hardware.arrays import RESPEAKER_USB_4MIC_V2
from appliance.store import open_store
from tests.speech import RATE, espeak
from tests.test_diarize_online import CFG
from tests.test_diarize_voices import CLINIC, plane_wave, shared_embedder


def _flags(d: OnlineDiarizer, utterances, directions=None) -> list[tuple[str, bool]]:
    t, out = 0.0, []
    for k, audio in enumerate(utterances):
        turns = d.assign(audio, t, t + audio.size / RATE, directions[k] if directions else None)
        out.append((turns[0].label, any(x.uncertain for x in turns)))
        t += audio.size / RATE + 1.0
    return out


def _alternating(voice_a: str, voice_b: str):
    a = [espeak(t, voice_a) for t in CLINIC[0:8:2]]
    b = [espeak(t, voice_b) for t in CLINIC[1:8:2]]
    return [x for pair in zip(a, b, strict=True) for x in pair]


@pytest.mark.slow
def test_similar_voices_without_direction_are_flagged_not_confidently_merged():
    embedder = shared_embedder()
    voice_only = replace(CFG, use_direction=False)
    similar = _flags(OnlineDiarizer(voice_only, embedder), _alternating("en+f3", "en+f2"))
    assert {label for label, _ in similar} == {"S1"}  # voice alone merges the two women...
    assert [unsure for _, unsure in similar[1::2]] == [True] * 4, similar  # ...but says it is unsure
    assert not any(unsure for _, unsure in similar[0::2]), similar  # the first voice's own turns are sure
    different = _flags(OnlineDiarizer(voice_only, embedder), _alternating("en+f3", "en-us"))
    assert [label for label, _ in different] == ["S1", "S2"] * 4 and not any(u for _, u in different), different


def test_a_confident_direction_settles_similar_voices():
    embedder = shared_embedder()
    utterances = _alternating("en+f3", "en+f2")
    raws = [plane_wave(u, RESPEAKER_USB_4MIC_V2, 45.0 if k % 2 == 0 else 225.0, snr_db=20.0, rt60=0.3, seed=k)
            for k, u in enumerate(utterances)]
    directions = [estimate_direction(r, RATE, RESPEAKER_USB_4MIC_V2) for r in raws]
    mono = [r[:, 1:5].mean(axis=1) for r in raws]
    fused = _flags(OnlineDiarizer(CFG, embedder), mono, directions)
    assert [label for label, _ in fused] == ["S1", "S2"] * 4, fused
    assert not any(unsure for _, unsure in fused[2:]), fused  # once both are known by direction


def test_the_flag_is_stored_cleared_by_a_decision_and_restored_by_undo(tmp_path):
    with open_store(str(tmp_path / "s.db")) as store:
        s = store.create_session("Visit", "exam-1", "", "room-device", "clinic", ["SOAP"])
        store.transition(s.id, "recording", "test")
        sure = store.add_segment(s.id, 0.0, 2.0, "S1", "How are you?")
        unsure = store.add_segment(s.id, 2.0, 3.0, "S1", "Fine, thanks.", speaker_uncertain=True)
        other = store.add_segment(s.id, 3.0, 4.0, "S2", "Good.", speaker_uncertain=True)
        store.transition(s.id, "stopped", "test")
        flags = {g.id: g.speaker_uncertain for g in store.read_transcript(s.id, actor="test", reason="test")}
        assert flags == {sure: False, unsure: True, other: True}

        store.set_segment_speaker(s.id, unsure, "S2", actor="panel")  # "it was the patient"
        store.confirm_speaker(s.id, other, actor="panel")  # "yes, the patient"
        after = {g.id: (g.speaker, g.speaker_uncertain) for g in store.read_transcript(s.id, actor="t", reason="t")}
        assert after == {sure: ("S1", False), unsure: ("S2", False), other: ("S2", False)}

        store.undo_last_edit(s.id, actor="panel")  # the confirmation taken back: unsure again
        again = {g.id: g.speaker_uncertain for g in store.read_transcript(s.id, actor="t", reason="t")}
        assert again == {sure: False, unsure: False, other: True}
