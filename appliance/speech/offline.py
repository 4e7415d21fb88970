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
from appliance.speech.pipeline import FinalSegment, PartialText, PipelineStats, SpeechPipeline


@dataclass
class FileTranscript:
    segments: list[FinalSegment]
    duration_s: float
    stats: PipelineStats
    partials: list[PartialText] = field(default_factory=list)


def transcribe_file(
    cfg: ApplianceConfig,
    engine: Engine,
    path: str,
    *,
    realtime: bool = False,
    on_segment: Callable[[FinalSegment], None] | None = None,
) -> FileTranscript:
    """Replay ``path`` through capture and the speech pipeline; raises CaptureError for a bad file."""
    from appliance.daemon.service import build_segmenter  # the daemon's own choice of VAD
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
    return FileTranscript(segments, capture.status_time(), pipeline.stats, partials)
