"""The refined pass (speech/refine.py): the visit decoded again in windows of joined speech behind
the live text, its words shared back among the stored lines, kept as one revision Undo takes back."""

from __future__ import annotations

import re

import pytest

from appliance.asr.engine import NullTranscriber, transcribe_with
from appliance.speech.align import share_words
from appliance.store import State, open_store
from tests.conftest import Clock
from tests.daemon import installed_models_dir
from tests.test_no_audio_on_disk import MAGIC
from tests.test_panel_app import Panel


def test_words_the_live_pass_missed_land_in_the_line_they_were_said_in():
    live = ["How are you?", "", "Fine thanks"]  # the middle utterance lost all its words live
    spans = [(0.0, 2.0), (2.3, 6.0), (6.3, 8.0)]
    refined = "How are you today? I have type two diabetes and hypertension. Fine, thanks."
    assert share_words(live, spans, refined) == [
        "How are you today?", "I have type two diabetes and hypertension.", "Fine, thanks."]


def test_matched_words_stay_with_their_line_and_a_break_moves_only_to_a_sentence_end():
    spans = [(0.0, 2.0), (2.3, 4.0)]
    assert share_words(["what brings you in", "my knee hurts"], spans, "What brings you in today? My knee hurts.") \
        == ["What brings you in today?", "My knee hurts."]
    # Live words vouch for their line: a break between two matched words is never moved.
    assert share_words(["what brings you in my", "knee hurts"], spans, "What brings you in today? My knee hurts.") \
        == ["What brings you in today? My", "knee hurts."]
    assert share_words(["a b c"], [(0.0, 2.0)], "") == [""]
    with pytest.raises(ValueError, match="2 texts for 1 spans"):
        share_words(["a", "b"], [(0.0, 1.0)], "a b")


def _visit_with_lines(store, texts: list[str]) -> tuple[str, list[str]]:
    s = store.create_session(name="AB", room="Exam 1", clinician="dr", device_id="room-1", site="clinic")
    store.transition(s.id, State.RECORDING, "test")
    ids = [store.add_segment(s.id, i * 3.0, i * 3.0 + 2.0, "S1", t) for i, t in enumerate(texts)]
    store.transition(s.id, State.STOPPED, "test")
    return s.id, ids


def test_refined_text_is_one_revision_that_spares_edited_lines_and_undo_takes_back(tmp_path):
    store = open_store(str(tmp_path / "s.db"), clock=Clock())
    sid, (a, b, c) = _visit_with_lines(store, ["type 2-d-e", "what's going on", "fine"])
    store.edit_segment_text(sid, b, "What is going on?", actor="clinician")  # a person's words stand
    live = {a: "type 2-d-e", b: "what's going on", c: "fine"}
    kept = store.refine_transcript(sid, {a: "type two diabetes", b: "What's going on today?"}, live)
    assert kept == (3, 1)  # revision 3, one line: the edited one keeps its words
    lines = {g.id: g for g in store.read_transcript(sid, actor="test", reason="test")}
    assert [lines[x].text for x in (a, b, c)] == ["type two diabetes", "What is going on?", "fine"]
    assert lines[a].speaker == "S1" and not lines[a].edited  # the label carries over; not a person's edit
    event = [e for e in store.audit_events(sid) if e.action == "edit:refine"][-1]
    assert event.detail == {"revision": 3, "segments": 1} and event.actor == "refiner"
    assert store.undoable_edit(sid) == "edit:refine"
    store.undo_last_edit(sid, actor="clinician")
    assert store.read_transcript(sid, actor="test", reason="test")[0].text == "type 2-d-e"
    # Nothing changes once the visit is sent: the clinic has what was reviewed.
    store.transition(sid, State.QUEUED, "test")
    assert store.refine_transcript(sid, {a: "type two diabetes"}, live) is None
    store.close()


@pytest.mark.slow
def test_a_visit_whose_live_text_was_lost_gets_it_from_the_refined_pass_shown_on_review(tmp_path):
    """The live recognizer hears nothing (timing only); the refined pass with Whisper tiny.en gives
    the lines their words, Review says so, Undo gives the live lines back, and no audio is on disk."""
    models = installed_models_dir("whisper-tiny.en")
    panel = Panel(tmp_path, engine=NullTranscriber(),
                  paths={"models_dir": str(models)},
                  asr={"engine": "whisper-onnx", "refine_model": "whisper-tiny.en"},
                  diarize={"enabled": False})
    try:
        assert panel.controller.refiner is not None
        refined: list[dict] = []
        panel.controller.add_listener(lambda kind, data: refined.append(data) if kind == "refined" else None)
        sid = panel.visit()
        page = panel.get(f"/review/{sid}").get_data(as_text=True)
        assert 'id="refined-msg"' in page  # still running, or already done: Review says which
        for _ in range(600):
            if refined:
                break
            panel.stop_event.wait(0.1)
        assert refined and refined[0]["session_id"] == sid and refined[0]["revision"] is not None
        lines = panel.store.read_transcript(sid, actor="test", reason="test")
        spoken = [g.text for g in lines if g.text]
        assert len(spoken) >= 0.8 * len(lines) >= 4, [g.text for g in lines]
        text = " ".join(spoken).lower()
        order = [text.find(w) for w in ("morning", "sore throat", "ibuprofen", "strep", "fluids")]
        assert all(i >= 0 for i in order) and order == sorted(order), text
        # Each line got the words said in it (they were placed by time alone: live had none).
        line_of = {w: [i for i, g in enumerate(lines) if w in g.text.lower()] for w in
                   ("morning", "sore throat", "tonsils", "strep", "fluids")}
        assert len(line_of["morning"]) == len(line_of["sore throat"]) == 1, line_of
        assert line_of["morning"] != line_of["sore throat"] and line_of["tonsils"] == line_of["strep"], line_of
        page = panel.get(f"/review/{sid}").get_data(as_text=True)
        msg = re.search(r'id="refined-msg"[^>]*>([^<]+)<', page)
        assert msg and f"improved {refined[0]['lines']} line" in msg.group(1)
        assert "Undo <small>the second pass" in page
        panel.post(f"/review/{sid}/undo")
        assert not any(g.text for g in panel.store.read_transcript(sid, actor="test", reason="test"))
        assert not panel.controller.refining(sid)  # its audio is let go with the result
        for f in (tmp_path / "state").rglob("*"):
            assert not (f.is_file() and f.read_bytes()[:4] in MAGIC), f
    finally:
        panel.close()


@pytest.mark.slow
def test_transcribe_file_gives_the_refined_text_beside_the_live_one(tmp_path):
    """`appliance transcribe` and the benchmarks run the same refined pass as the daemon."""
    from appliance.asr.factory import make_engine
    from appliance.config import parse_config
    from appliance.speech.offline import transcribe_file
    from tests.test_panel_app import DEMO

    models = installed_models_dir("whisper-tiny.en")
    cfg = parse_config({"paths": {"models_dir": str(models)}, "vad": {"engine": "energy"},
                        "diarize": {"enabled": False}, "asr": {"refine_model": "whisper-tiny.en"}})
    result = transcribe_file(cfg, NullTranscriber(), DEMO, refiner=make_engine(cfg.asr, str(models)))
    assert result.refined is not None and len(result.refined) == len(result.segments) >= 4
    assert not any(g.text for g in result.segments)  # live: timing only
    assert all(g.audio is None for g in result.segments)  # nothing of the audio outlives the call
    text = " ".join(g.text for g in result.refined).lower()
    assert "sore throat" in text and "strep" in text, text
    assert [g.start for g in result.refined] == [g.start for g in result.segments]


@pytest.mark.slow
def test_the_refined_pass_on_the_live_model_shares_it_and_decodes_alike(tmp_path):
    """asr.refine_model = asr.model: one copy of the model in RAM, its own buffers and prompt."""
    from appliance.config import parse_config
    from appliance.speech.engines import build_engine, refiner_engine
    from tests.speech import espeak

    models = installed_models_dir("whisper-tiny.en")
    cfg = parse_config({"paths": {"models_dir": str(models)}, "asr": {"refine_model": "whisper-tiny.en"}})
    live, why = build_engine(cfg)
    assert not why
    twin = refiner_engine(cfg, live)
    assert twin is not None and twin is not live
    assert twin._enc is live._enc and twin._dec is live._dec  # type: ignore[attr-defined]
    assert twin.history is not live.history and twin._k[0] is not live._k[0]  # type: ignore[attr-defined]
    audio = espeak("Take this medicine twice a day with food.")
    texts = [transcribe_with(e, audio).text for e in (live, twin)]
    assert texts[0] == texts[1] and "medicine" in texts[0].lower()


@pytest.mark.slow
def test_a_window_where_one_line_would_lose_its_words_keeps_all_its_live_text():
    """Whisper tiny.en behind two spoken lines. When one line would keep under 70 % of its live words
    (here: five live words that were never said), the window's words were shared out on a guess
    and a neighbour may hold them: the whole window keeps its live text, so nothing is said twice,
    even though the window as a whole has enough words (the first line gains three)."""
    from appliance.asr.whisper import WhisperOnnx
    from appliance.config.schema import AsrConfig
    from appliance.speech.refine import Refiner
    from tests.speech import espeak

    models = installed_models_dir("whisper-tiny.en")
    engine = WhisperOnnx(models / "whisper-tiny.en", AsrConfig())
    said = [espeak("What brings you in today?"), espeak("My left knee has been hurting for two weeks.")]

    def refine(live: list[str]) -> tuple[dict[str, str], int]:
        got: dict[str, str] = {}
        refiner = Refiner(engine, AsrConfig(refine_model="whisper-tiny.en"), lambda _s, texts, _l: got.update(texts))
        refiner.begin("v")
        t = 0.0
        for k, (text, audio) in enumerate(zip(live, said, strict=True)):
            refiner.add(f"line{k}", t, t + audio.size / 16000, text, audio)
            t += audio.size / 16000 + 0.5
        refiner.end("v")
        while refiner.step():
            pass
        return got, refiner.kept_live

    got, kept = refine(["what brings you", "my left knee has been hurting for two weeks"])
    assert kept == 0 and "today" in got["line0"].lower()  # the word the live pass missed comes back
    got, kept = refine(["what", "my left knee has been hurting for two weeks now doctor and it is"])
    assert kept == 1 and got == {}
