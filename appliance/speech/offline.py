"""A recording file through the daemon's own pipeline: file capture → VAD → engine.

Used by `appliance transcribe` and the benchmarks, so what they measure is what the
room device does during a visit (same segmenter, same engine, same guards).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from appliance.asr.engine import Engine
from appliance.capture import Capture, CaptureError
from appliance.config.schema import ApplianceConfig
from appliance.diarize.visit import VisitDiarization
from appliance.speech.pipeline import FinalSegment, PartialText, PipelineStats, SpeechPipeline


@dataclass
class FileTranscript:
    segments: list[FinalSegment]
    duration_s: float
    stats: PipelineStats
    partials: list[PartialText] = field(default_factory=list)
    speaker_names: dict[str, str] = field(default_factory=dict)  # label → "Speaker 1" / "Clinician" …


def transcribe_file(
    cfg: ApplianceConfig,
    engine: Engine,
    path: str,
    *,
    realtime: bool = False,
    on_segment: Callable[[FinalSegment], None] | None = None,
) -> FileTranscript:
    """Replay ``path`` through capture and the speech pipeline; raises CaptureError for a bad file."""
    from appliance.speech.engines import build_segmenter  # the daemon's own choice of VAD
    capture_cfg = dataclasses.replace(cfg.capture, source="file", file=path, realtime=realtime)
    segments: list[FinalSegment] = []
    partials: list[PartialText] = []

    def store(seg: FinalSegment) -> None:
        segments.append(seg)
        if on_segment is not None:
            on_segment(seg)

    pipeline = SpeechPipeline(
        build_segmenter(cfg), engine, store,
        on_partial=partials.append if realtime else None, partial_interval_s=cfg.asr.partial_interval_s,
    )
    pipeline.diarizer = VisitDiarization(cfg).new_visit() if cfg.diarize.enabled else None
    stop = threading.Event()
    worker = threading.Thread(target=pipeline.run, args=(stop,), name="speech", daemon=True)
    worker.start()
    capture = Capture(capture_cfg, pipeline.feed)
    pipeline.begin("file", 0.0)
    try:
        capture.start()
        capture.wait_finished()
        if capture.error is not None:
            raise CaptureError(str(capture.error))
    finally:
        capture.stop()
        pipeline.end_utterance()
        pipeline.drain(timeout=3600)
        stop.set()
        worker.join(5)
    names: dict[str, str] = {}
    if pipeline.diarizer is not None:  # the same hindsight pass as at Stop on the device
        labels = pipeline.diarizer.recluster()
        segments = [dataclasses.replace(g, speaker=labels.get(g.turns[0], g.speaker)) if g.turns else g
                    for g in segments]
        names = pipeline.diarizer.display_names()
    return FileTranscript(segments, capture.status_time(), pipeline.stats, partials, names)
