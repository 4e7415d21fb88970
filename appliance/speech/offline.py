"""A recording file as one visit of the room device: file capture → VAD → engine → speaker labels.

Used by `appliance transcribe` and the benchmarks, so what they measure is what the room
device does during a visit: the same VisitAudio (speech/visit.py), segmenter, engine and guards.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from appliance.asr.engine import Engine
from appliance.capture import Capture, CaptureError
from appliance.config.schema import ApplianceConfig
from appliance.diarize.visit import VisitDiarization
from appliance.speech.engines import build_segmenter  # the daemon's own choice of VAD
from appliance.speech.pipeline import FinalSegment, PartialText, PipelineStats
from appliance.speech.refine import Refiner
from appliance.speech.visit import Labeller, SpeechParts, VisitAudio


@dataclass
class FileTranscript:
    segments: list[FinalSegment]
    duration_s: float
    stats: PipelineStats
    partials: list[PartialText] = field(default_factory=list)
    speaker_names: dict[str, str] = field(default_factory=dict)  # label → "Speaker 1" / "Clinician" …
    refined: list[FinalSegment] | None = None  # the segments with the refined pass's text (None: no pass)


def transcribe_file(
    cfg: ApplianceConfig,
    engine: Engine,
    path: str,
    *,
    realtime: bool = False,
    on_segment: Callable[[FinalSegment], None] | None = None,
    diarizer: Labeller | None = None,
    refiner: Engine | None = None,
) -> FileTranscript:
    """Replay ``path`` as one visit; raises CaptureError for a bad file.

    ``diarizer`` replaces the visit's own labeller (an OnlineDiarizer-like object; benchmarks);
    ``refiner``: the refined pass's recognizer, run behind the live one as on the device.
    """
    capture_cfg = dataclasses.replace(cfg.capture, source="file", file=path, realtime=realtime)
    segments: list[FinalSegment] = []
    partials: list[PartialText] = []

    refined_texts: dict[str, str] = {}
    second = Refiner(refiner, cfg.asr, lambda _sid, texts, _live: refined_texts.update(texts)) if refiner else None

    def store(seg: FinalSegment) -> None:
        if second is not None and seg.audio is not None:
            second.add(str(len(segments)), seg.start, seg.end, seg.text, seg.audio)
        seg = dataclasses.replace(seg, audio=None)
        segments.append(seg)
        visit.note_stored(seg.turns, str(len(segments) - 1))  # its index: relabelled at the end
        if on_segment is not None:
            on_segment(seg)

    speakers = None if diarizer is not None else VisitDiarization(cfg)
    parts = SpeechParts(engine, build_segmenter(cfg), speakers, lambda sink: Capture(capture_cfg, sink),
                        refiner=refiner)
    visit = VisitAudio(cfg, parts, on_segment=store, on_partial=partials.append if realtime else None)
    visit.new_visit(diarizer)
    if visit.direction_problem and visit.labelling:
        raise CaptureError(visit.direction_problem)
    if second is not None:
        second.begin("file")
    with visit.running(), second.running() if second is not None else contextlib.nullcontext():
        try:
            visit.open("file", 0.0, paced_source=not realtime)
            visit.wait_source_finished()
            if (error := visit.capture_error()) is not None:
                raise CaptureError(str(error))
        finally:
            heard = visit.close() or 0.0
            visit.drain(timeout=3600)
            if second is not None:
                second.end("file")
                second.wait_handed_over("file", cfg.asr.refine_finish_s + 60)
    names: dict[str, str] = {}
    if (relabelled := visit.relabel()) is not None:  # the same hindsight pass as at Stop on the device
        # as on the device: a line the hindsight pass gives another speaker is no longer unsure
        segments = [dataclasses.replace(g, speaker=new, uncertain=g.uncertain and new == g.speaker)
                    if (new := relabelled.speakers.get(str(i))) else g for i, g in enumerate(segments)]
        names = relabelled.names
    refined = None if second is None else [
        dataclasses.replace(g, text=refined_texts.get(str(i), g.text), word_confidence=None)
        if str(i) in refined_texts else g for i, g in enumerate(segments)]
    return FileTranscript(segments, heard, visit.stats, partials, names, refined)
