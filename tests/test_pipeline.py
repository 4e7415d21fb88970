"""Speech pipeline: VAD → recognition worker → segments, with bounded RAM and failures contained."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from appliance.asr.engine import NoVisitContext, Recognition
from appliance.asr.registry import Abilities
from appliance.capture.blocks import CapturedBlock
from appliance.config.schema import VadConfig
from appliance.speech.pipeline import FinalSegment, PartialText, SpeechPipeline
from appliance.vad import EnergySegmenter
from tests.speech import RATE, dialogue, trimmed


class LengthStream:
    def __init__(self, engine: LengthTranscriber) -> None:
        self.engine, self.samples = engine, 0

    def accept(self, samples: np.ndarray) -> None:
        self.samples += samples.size

    def partial(self) -> str:
        self.engine.partials.append(self.samples)
        return f"{self.samples / RATE:.2f}"

    def cancel(self) -> None:
        pass

    def finish(self) -> Recognition:
        e = self.engine
        e.calls += 1
        if e.calls in e.fail_on:
            raise RuntimeError("decoder exploded")
        return Recognition(text=f"{self.samples / RATE:.2f}", no_speech=e.calls in e.no_speech_on)


class LengthTranscriber(NoVisitContext):
    """Reports the audio length it was given; fails on demand (a real engine's contract)."""

    name = "length"
    abilities = Abilities(offline=False, vocabulary=False, visit_context=False)

    def __init__(self, fail_on: set[int] | None = None, no_speech_on: set[int] | None = None) -> None:
        self.calls = 0
        self.partials: list[int] = []
        self.fail_on = fail_on or set()
        self.no_speech_on = no_speech_on or set()

    def new_stream(self, start_s: float | None = None) -> LengthStream:
        return LengthStream(self)


def feed_all(p: SpeechPipeline, audio: np.ndarray, block: int = 512, *, start: int = 0,
             speedup: float | None = None) -> None:
    """Feed ``audio[start:]`` in capture blocks; paced at ``speedup`` × real time if given."""
    for i in range(start, audio.size, block):
        chunk = audio[i:i + block]
        p.feed(CapturedBlock(raw=chunk[:, None], rate=RATE, mono16k=chunk, t=i / RATE))
        if speedup:
            time.sleep(chunk.size / RATE / speedup)


def start_worker(p: SpeechPipeline, offset: float = 0.0) -> tuple[threading.Event, threading.Thread]:
    """Run the recognition worker and route what is fed to session "S1"."""
    stop = threading.Event()
    worker = threading.Thread(target=p.run, args=(stop,))
    worker.start()
    p.begin("S1", offset)
    return stop, worker


def run_pipeline(transcriber, audio, offset=0.0):
    got: list[FinalSegment] = []
    p = SpeechPipeline(EnergySegmenter(VadConfig()), transcriber, got.append)
    stop, worker = start_worker(p, offset)
    feed_all(p, audio)
    p.end_utterance()
    assert p.drain(10)
    stop.set()
    worker.join(2)
    return p, got


def test_segments_carry_session_times_and_text():
    audio, truth = dialogue(["Where does it hurt?", "In my left knee."])
    p, got = run_pipeline(LengthTranscriber(), audio, offset=100.0)
    assert [g.session_id for g in got] == ["S1", "S1"]
    for g, (s, _e) in zip(got, truth, strict=True):
        assert 100 + s - 0.5 <= g.start <= 100 + s + 0.05
        assert abs(float(g.text) - (g.end - g.start)) < 0.02  # the whole utterance reached the engine
    assert p.pending_seconds() == 0


def test_failed_recognition_keeps_timing_and_later_utterances():
    audio, _ = dialogue(["First sentence here.", "Second sentence here.", "Third one."])
    p, got = run_pipeline(LengthTranscriber(fail_on={1}), audio)
    assert len(got) == 3
    assert got[0].text == "" and got[1].text and got[2].text
    assert p.stats.failed == 1 and "decoder exploded" in p.stats.last_error


def test_no_speech_verdict_stores_nothing():
    audio, _ = dialogue(["Cough.", "Then a real sentence about symptoms."])
    _, got = run_pipeline(LengthTranscriber(no_speech_on={1}), audio)
    assert len(got) == 1


def test_blocks_without_a_session_are_dropped():
    got: list[FinalSegment] = []
    p = SpeechPipeline(EnergySegmenter(VadConfig()), LengthTranscriber(), got.append)
    audio, _ = dialogue(["Nobody pressed start."])
    feed_all(p, audio)  # no begin(): not recording
    p.end_utterance()
    assert p.stats.utterances == 0 and p.pending_seconds() == 0


def test_queue_is_bounded_in_seconds():
    audio, _ = dialogue(["One sentence.", "Another sentence.", "A third sentence.", "A fourth one."])
    p = SpeechPipeline(EnergySegmenter(VadConfig()), LengthTranscriber(), lambda s: None, max_queued_s=2.5)
    p.begin("S1", 0.0)
    feed_all(p, audio)  # no worker running: recognition "stalled"
    p.end_utterance()
    assert p.stats.utterances == 4
    assert p.stats.dropped >= 1
    assert p._queued_s <= 2.5


@pytest.mark.slow
def test_partials_grow_while_speaking_and_finals_see_the_whole_utterance():
    """Real-time feed: partials at the configured interval, fed incrementally into the same stream."""
    audio, _ = dialogue(["This is a rather long first sentence that keeps going for a while."])
    engine = LengthTranscriber()
    got: list[FinalSegment] = []
    partials: list[PartialText] = []
    p = SpeechPipeline(EnergySegmenter(VadConfig()), engine, got.append, on_partial=partials.append,
                       partial_interval_s=0.2)
    stop, worker = start_worker(p)
    feed_all(p, audio, 1600, speedup=4.0)  # 4x real time: enough for several partials
    p.end_utterance()
    assert p.drain(5)
    stop.set()
    worker.join(2)
    assert len(got) == 1 and len(partials) >= 3
    lengths = [float(x.text) for x in partials]
    assert lengths == sorted(lengths)
    assert float(got[0].text) >= lengths[-1]  # the same stream was finished, fed to the end
    assert all(x.start == got[0].start for x in partials)
    # fed incrementally: the utterance plus at most the trailing pause beyond its cut
    assert 0 <= float(got[0].text) - (got[0].end - got[0].start) <= 0.6
    assert len(p.stats.latencies) == 1 and 0 <= p.stats.latencies[0] < 2.0


class BlockingPartialStream(LengthStream):
    """A partial that runs until cancelled, like a long Whisper re-decode of a 15 s utterance."""

    def __init__(self, engine: LengthTranscriber) -> None:
        super().__init__(engine)
        self.cancelled = threading.Event()

    def partial(self) -> str:
        from appliance.asr.engine import Cancelled

        if not self.cancelled.wait(30):
            return "never cancelled"
        raise Cancelled

    def cancel(self) -> None:
        self.cancelled.set()


def test_a_waiting_final_cancels_the_partial_in_progress():
    engine = LengthTranscriber()
    streams: list[BlockingPartialStream] = []

    def new_stream(start_s: float | None = None) -> BlockingPartialStream:
        streams.append(BlockingPartialStream(engine))
        return streams[-1]

    engine.new_stream = new_stream  # type: ignore[method-assign]
    got: list[FinalSegment] = []
    partials: list[PartialText] = []
    p = SpeechPipeline(EnergySegmenter(VadConfig()), engine, got.append, on_partial=partials.append,
                       partial_interval_s=0.2)
    stop, worker = start_worker(p)
    audio, truth = dialogue(["This is a rather long first sentence that keeps going for a while."])
    mid = int((truth[0][0] + truth[0][1]) / 2 * RATE)
    feed_all(p, audio[:mid])  # inside the first utterance: a partial starts and blocks
    deadline = time.monotonic() + 10
    while p._partial_stream is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert p._partial_stream is not None
    feed_all(p, audio, start=mid)  # the utterance ends: its final must not wait 30 s behind the partial
    p.end_utterance()
    assert p.drain(10)
    stop.set()
    worker.join(2)
    assert streams[0].cancelled.is_set()
    assert got and not partials  # the cancelled partial published nothing


def test_labels_follow_utterance_order_while_text_decodes_alongside():
    order: list[float] = []

    class Recorder:
        def assign(self, audio16k, start, end, direction=None):
            order.append(start)
            time.sleep(0.05)  # labelling slower than recognition: results must still pair up
            return [type("Turn", (), {"label": f"S{len(order)}", "index": len(order), "start": start,
                                      "end": end})()]

    got: list[FinalSegment] = []
    p = SpeechPipeline(EnergySegmenter(VadConfig()), LengthTranscriber(), got.append)
    p.diarizer = Recorder()
    stop, worker = start_worker(p)
    feed_all(p, dialogue(["The first one.", "And then a second.", "Finally the third one."])[0])
    p.end_utterance()
    assert p.drain(20)
    stop.set()
    worker.join(2)
    assert order == sorted(order) and len(got) == len(order) >= 3
    assert [g.speaker for g in got] == [f"S{i + 1}" for i in range(len(got))]
    assert [g.start for g in got] == [round(s, 3) for s in order]


class OfflineLengthTranscriber(LengthTranscriber):
    # decodes at finish(), like Whisper: the pipeline may decode early
    abilities = Abilities(offline=True, vocabulary=False, visit_context=False)


def run_paced(engine, audio):
    got: list[FinalSegment] = []
    p = SpeechPipeline(EnergySegmenter(VadConfig()), engine, got.append)
    stop, worker = start_worker(p)
    feed_all(p, audio, 1600, speedup=4.0)
    p.end_utterance()
    assert p.drain(10)
    stop.set()
    worker.join(2)
    return got, p.stats


@pytest.mark.slow
def test_finals_are_decoded_as_soon_as_the_speaker_falls_silent():
    audio, _ = dialogue(["Good morning, how are you today?", "I have had a headache for three days."],
                        gap_s=1.5)
    early, plain = OfflineLengthTranscriber(), LengthTranscriber()
    (got_early, early_stats), (got_plain, plain_stats) = run_paced(early, audio), run_paced(plain, audio)
    assert len(got_early) == len(got_plain) == 2
    assert early_stats.early_finals == 2 and plain_stats.early_finals == 0  # decoded during the silence
    # the early decode saw exactly the audio the VAD's final utterance holds
    assert [g.text for g in got_early] == [g.text for g in got_plain]
    assert [float(g.text) for g in got_early] == pytest.approx([g.end - g.start for g in got_early], abs=0.002)


@pytest.mark.slow
def test_an_early_decode_is_dropped_when_speech_resumes():
    """A 0.3 s hesitation (shorter than the pause that ends an utterance) starts an early decode;
    the speaker goes on, so it is dropped and the decode after the sentence's end is used."""
    rng = np.random.default_rng(1)
    hesitation = rng.normal(0, 1e-4, int(0.3 * RATE)).astype(np.float32)
    quiet = np.zeros(RATE, np.float32)
    audio = np.concatenate([quiet, trimmed("The pain started on Monday"), hesitation,
                            trimmed("and got worse over the weekend."), quiet])
    engine = OfflineLengthTranscriber()
    got, stats = run_paced(engine, audio)
    assert len(got) == 1
    assert float(got[0].text) == pytest.approx(got[0].end - got[0].start, abs=0.002)
    assert engine.calls == 2 and stats.early_finals == 1
