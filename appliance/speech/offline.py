"""A recording file through the daemon's own pipeline: file capture → VAD → engine.

Used by `appliance transcribe` and the benchmarks, so what they measure is what the
room device does during a visit (same segmenter, same engine, same guards).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.asr.engine import Engine
from appliance.capture import Capture, CaptureError
from appliance.config.schema import ApplianceConfig
from appliance.diarize.direction import DirectionTracker
from appliance.diarize.visit import VisitDiarization
from appliance.frontend import build_frontend
from appliance.frontend.frontend import paced
from appliance.hardware.arrays import MicArray, array_for_capture
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
    diarizer: Any = None,
) -> FileTranscript:
    """Replay ``path`` through capture and the speech pipeline; raises CaptureError for a bad file.

    ``diarizer`` replaces the visit's own labeller (an OnlineDiarizer-like object; benchmarks).
    """
    from appliance.speech.engines import build_segmenter  # the daemon's own choice of VAD
    capture_cfg = dataclasses.replace(cfg.capture, source="file", file=path, realtime=realtime)
    segments: list[FinalSegment] = []
    partials: list[PartialText] = []

    def store(seg: FinalSegment) -> None:
        segments.append(seg)
        if on_segment is not None:
            on_segment(seg)

    frontend = build_frontend(cfg.capture.frontend, cfg.capture.buffer_seconds)
    if frontend is not None:
        frontend.set_array(file_array(cfg, path))
    pipeline = SpeechPipeline(
        build_segmenter(cfg), engine, store,
        on_partial=partials.append if realtime else None, partial_interval_s=cfg.asr.partial_interval_s,
        frontend=frontend,
    )
    if diarizer is None and cfg.diarize.enabled:
        diarizer = VisitDiarization(cfg).new_visit()
    pipeline.diarizer = diarizer
    if diarizer is not None and cfg.diarize.use_direction:
        pipeline.tracker = file_direction_tracker(cfg, path)
    stop = threading.Event()
    worker = threading.Thread(target=pipeline.run, args=(stop,), name="speech", daemon=True)
    worker.start()
    # As fast as possible, the file waits while an utterance waits: the front end's RAM ring holds
    # only the one being recognised and the one in flight.
    sink = pipeline.feed if realtime or frontend is None else paced(pipeline.feed, pipeline.queued_seconds)
    capture = Capture(capture_cfg, sink)
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
        # as on the device: a line the hindsight pass gives another speaker is no longer unsure
        segments = [dataclasses.replace(g, speaker=new, uncertain=g.uncertain and new == g.speaker)
                    if g.turns and (new := labels.get(g.turns[0], g.speaker)) else g for g in segments]
        names = pipeline.diarizer.display_names()
    return FileTranscript(segments, capture.status_time(), pipeline.stats, partials, names)


def file_direction_tracker(cfg: ApplianceConfig, path: str) -> DirectionTracker | None:
    """A direction tracker for a replayed array recording (see file_array)."""
    import soundfile as sf

    array = file_array(cfg, path)
    return None if array is None else DirectionTracker(array, int(sf.info(path).samplerate))


def file_array(cfg: ApplianceConfig, path: str) -> MicArray | None:
    """The array that recorded ``path``, when its raw microphones are in it: `capture.array` names
    the geometry (a file's name says nothing about the array that recorded it, unlike a device's)."""
    import soundfile as sf

    try:
        info = sf.info(path)
    except (RuntimeError, OSError):
        return None  # capture reports the unreadable file itself
    try:
        array = array_for_capture(cfg.capture.array, Path(path).name, cfg.capture.arrays_dir)
    except ValueError as exc:
        raise CaptureError(f"capture.array: {exc}") from None
    return array if array is not None and array.usable_with(info.channels) else None
