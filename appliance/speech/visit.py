"""One visit's audio side: capture → VAD → recognition → speaker labels → the relabel at Stop.

The daemon's SessionController and `appliance transcribe` (speech/offline.py; the benchmarks and
the demo go through one of the two) run every visit through this object, so these rules exist once:
- Pause closes the input before the utterance in flight is flushed (nothing said during a pause
  reaches a buffer);
- each visit gets a fresh speaker labeller (labels start at S1, primed with the clinician's
  enrolment), and a direction tracker when the capture's device, or `capture.array`, names a
  microphone array its opened channels fit;
- with such an array, the front end (`capture.frontend`: WPE, MVDR beam at the tracked direction)
  gives recognition its beam instead of the mono mix; mono and 2-mic captures keep the mix;
- at Stop the labels are re-clustered with hindsight and a stored segment takes its first turn's label.
Audio exists only in RAM here (capture blocks, the VAD's buffer, the recognition queue).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from appliance.asr.engine import Engine
from appliance.capture import Capture, CapturedBlock, CaptureStatus
from appliance.config.schema import ApplianceConfig
from appliance.diarize.direction import Direction, DirectionTracker
from appliance.diarize.online import OnlineDiarizer
from appliance.diarize.visit import VisitDiarization
from appliance.frontend import ArrayFrontEnd, build_frontend
from appliance.frontend.frontend import paced
from appliance.hardware.arrays import MicArray, array_for_capture
from appliance.speech.engines import build_engine, build_refiner_engine, build_segmenter
from appliance.speech.pipeline import Diarizer, FinalSegment, PartialText, PipelineStats, SpeechPipeline
from appliance.speech.worker import worker_thread
from appliance.store.voiceprints import VoicePrint
from appliance.vad import Segmenter

log = logging.getLogger(__name__)

CaptureFactory = Callable[[Callable[[CapturedBlock], None]], Capture]


class Labeller(Diarizer, Protocol):
    """Who spoke: the visit's OnlineDiarizer, or a stand-in (the diarization benchmark's fan-out)."""

    def recluster(self) -> dict[int, str]: ...

    def display_names(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class SpeechParts:
    """What every visit of a process is made of, built once (the models are loaded once)."""

    engine: Engine
    segmenter: Segmenter
    speakers: VisitDiarization | None  # gives each visit its labeller; None: the caller brings its own
    capture_factory: CaptureFactory
    unavailable: str = ""  # why recording is impossible (e.g. the speech model is missing), in plain words
    refiner: Engine | None = None  # the refined pass's recognizer (asr.refine_model); None: no refined pass


def build_speech(cfg: ApplianceConfig, *, engine: Engine | None = None,
                 capture_factory: CaptureFactory | None = None) -> SpeechParts:
    """The configured recognizer (a timing-only one and the reason when it cannot load), VAD,
    speaker labeller and microphone."""
    unavailable = ""
    if engine is None:
        engine, unavailable = build_engine(cfg)
    return SpeechParts(engine, build_segmenter(cfg), VisitDiarization(cfg),
                       capture_factory or (lambda sink: Capture(cfg.capture, sink)), unavailable,
                       build_refiner_engine(cfg, engine))


@dataclass(frozen=True)
class Relabelling:
    """The hindsight pass at Stop."""

    speakers: dict[str, str]  # stored segment → its label now (the label of its first turn)
    names: dict[str, str]  # label → what the transcript calls it (Clinician, Patient, Speaker 2 …)


def array_problem(cfg: ApplianceConfig) -> str:
    """Why `capture.array` (or a geometry in `capture.arrays_dir`) cannot be used; "" when it can."""
    try:
        array_for_capture(cfg.capture.array, "", cfg.capture.arrays_dir)
    except ValueError as exc:
        return f"capture.array: {exc}"
    return ""


def capture_array(cfg: ApplianceConfig, device: str, channels: int) -> MicArray | None:
    """The microphone array behind a capture of ``channels`` from ``device`` (a sound card's name,
    or a replayed file's) when `capture.array` names one those channels fit; ValueError for a
    `capture.array` that names no known geometry."""
    array = array_for_capture(cfg.capture.array, device, cfg.capture.arrays_dir)
    return array if array is not None and array.usable_with(channels) else None


class VisitAudio:
    def __init__(self, cfg: ApplianceConfig, parts: SpeechParts, *, on_segment: Callable[[FinalSegment], None],
                 on_partial: Callable[[PartialText], None] | None = None) -> None:
        self.cfg = cfg
        self.speakers = parts.speakers
        self._capture_factory = parts.capture_factory
        self.frontend: ArrayFrontEnd | None = build_frontend(cfg.capture.frontend, cfg.capture.buffer_seconds)
        self.pipeline = SpeechPipeline(parts.segmenter, parts.engine, on_segment, on_partial=on_partial,
                                       partial_interval_s=cfg.asr.partial_interval_s, frontend=self.frontend,
                                       keep_audio=parts.refiner is not None)
        self._capture: Capture | None = None
        self._labeller: Labeller | None = None
        self._own: OnlineDiarizer | None = None  # the labeller whose memory is kept in the store
        self._segment_of_turn: dict[int, str] = {}  # labeller turn → stored segment, for the relabel
        self._choose_array = False  # on the next block: its channels and rate are the capture's
        self.direction_problem = array_problem(cfg) if cfg.diarize.use_direction or self.frontend else ""
        if self.direction_problem:  # config check names the key; visits still record without direction
            log.error("no direction of arrival: %s", self.direction_problem)

    # -- recognition worker --------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Recognition loop; the daemon runs it as a supervised component."""
        self.pipeline.run(stop)

    @contextlib.contextmanager
    def running(self) -> Iterator[VisitAudio]:
        """Recognition on a thread of its own while the block runs (`appliance transcribe`, tests)."""
        with worker_thread(self.run, "speech", join_s=5):
            yield self

    # -- a visit -------------------------------------------------------------------------------
    def new_visit(self, labeller: Labeller | None = None) -> None:
        """A fresh labeller: the visit's own, or ``labeller`` instead (benchmarks)."""
        self._own = None if labeller is not None or self.speakers is None else self.speakers.new_visit()
        self._labeller = labeller if labeller is not None else self._own
        self.pipeline.diarizer = self._labeller
        self._segment_of_turn = {}

    def restore(self, prints: list[VoicePrint]) -> None:
        """A visit recovered after a crash goes on with its labeller's memory from the store."""
        self.new_visit()
        if self._own is None:
            return
        self._own.restore([(p.start, p.end, p.label, p.vector,
                            None if p.azimuth is None else Direction(p.azimuth, p.confidence or 0.0))
                           for p in prints])
        self._segment_of_turn = {i: p.segment_id for i, p in enumerate(prints)}

    def open(self, session_id: str, offset: float, *, paced_source: bool = False) -> None:
        """Start hearing: what the capture delivers goes to ``session_id``; its time 0 is ``offset``.
        ``paced_source``: the source (a file read as fast as possible) waits while speech waits for
        recognition, so the front end's RAM ring still holds each utterance at its turn."""
        self.pipeline.begin(session_id, offset)
        self.pipeline.tracker = None
        self._choose_array = not self.direction_problem and (
            self.frontend is not None or (self._labeller is not None and self.cfg.diarize.use_direction))
        sink: Callable[[CapturedBlock], None] = self._feed
        if paced_source and self.frontend is not None:
            sink = paced(self._feed, self.pipeline.queued_seconds)
        self._capture = self._capture_factory(sink)
        self._capture.start()

    def _feed(self, block: CapturedBlock) -> None:
        if self._choose_array:  # capture thread, first block: the source is open
            self._choose_array = False
            self._use_array(block)
        self.pipeline.feed(block)

    def _use_array(self, block: CapturedBlock) -> None:
        """Direction of arrival for the labels and the front end's beam, from the capture's array."""
        cap = self._capture
        try:
            array = capture_array(self.cfg, cap.status().device if cap else "", block.raw.shape[1])
        except ValueError as exc:
            log.error("no direction of arrival: capture.array: %s", exc)
            array = None
        if self.frontend is not None:
            self.frontend.set_array(array)
            log.info("recognition hears %s", self.frontend.describe())
        if array is not None and self._labeller is not None and self.cfg.diarize.use_direction:
            log.info("direction of arrival from %s", array.name)
            self.pipeline.tracker = DirectionTracker(array, block.rate)

    def pause(self) -> None:
        assert self._capture is not None
        self._capture.pause()  # first: nothing more is read from the microphone
        self.pipeline.end_utterance()

    def resume(self, session_id: str, offset: float) -> None:
        if self._capture is None:  # a visit recovered after a crash has no capture yet
            self.open(session_id, offset)
        else:
            self.pipeline.begin(session_id, offset)
            self._capture.resume()

    def hold_input(self) -> bool:
        """Stop reading the microphone without ending the utterance (storage full); False: no input."""
        if self._capture is None:
            return False
        self._capture.pause()
        return True

    def release_input(self) -> None:
        if self._capture is not None:
            self._capture.resume()

    def close(self) -> float | None:
        """Close the input and the utterance in flight; seconds the closed capture delivered (None:
        there was none)."""
        cap, self._capture = self._capture, None
        heard = None
        if cap is not None:
            cap.stop()
            heard = cap.status_time()
        self.pipeline.end_utterance()
        return heard

    def drain(self, timeout: float) -> bool:
        """Wait until every utterance heard is handed over; False on timeout."""
        return self.pipeline.drain(timeout)

    def note_stored(self, turns: tuple[int, ...], segment: str) -> None:
        """The segment holding ``turns`` is stored as ``segment`` (it gets relabelled at Stop)."""
        self._segment_of_turn.update(dict.fromkeys(turns, segment))

    def voiceprints(self, turns: tuple[int, ...], segment: str) -> list[VoicePrint]:
        """What the labeller learnt from ``turns``, to be kept with their segment (survives a crash)."""
        if self._own is None or not turns:
            return []
        return [VoicePrint(i, segment, a, b, label, v, d.azimuth_deg if d else None, d.confidence if d else None)
                for i, a, b, label, v, d in self._own.export_turns(turns)]

    def relabel(self) -> Relabelling | None:
        """Stop: every turn re-clustered with hindsight; a segment's first turn decides its label."""
        if self._labeller is None:
            return None
        speakers: dict[str, str] = {}
        for turn, label in sorted(self._labeller.recluster().items()):
            segment = self._segment_of_turn.get(turn)
            if segment is not None:
                speakers.setdefault(segment, label)
        return Relabelling(speakers, self._labeller.display_names())

    # -- what the room shows -------------------------------------------------------------------
    @property
    def labelling(self) -> bool:
        """This visit has a speaker labeller."""
        return self._labeller is not None

    def speaker_names(self) -> dict[str, str]:
        """What the live labeller calls each label now ("S1" → "Clinician" once enrolled)."""
        return dict(self._labeller.display_names()) if self._labeller is not None else {}

    def capture_status(self) -> CaptureStatus | None:
        cap = self._capture
        return cap.status() if cap is not None else None

    def heard_seconds(self) -> float:
        """Seconds the open capture has delivered (0 when none is open)."""
        cap = self._capture
        return cap.status_time() if cap is not None else 0.0

    def capture_error(self) -> BaseException | None:
        cap = self._capture
        return cap.error if cap is not None else None

    def wait_source_finished(self, timeout: float | None = None) -> bool:
        """For a file source (demo, tests): True once the whole file has been captured."""
        cap = self._capture
        return cap.wait_finished(timeout) if cap is not None else True

    def pending_seconds(self) -> float:
        return self.pipeline.pending_seconds()

    @property
    def stats(self) -> PipelineStats:
        return self.pipeline.stats
