"""Speaker diarization on the device: who spoke when, live, from voice and direction.

    embedder = make_embedder(cfg.diarize, cfg.paths.models_dir)
    diarizer = OnlineDiarizer(cfg.diarize, embedder, enrolled=load_enrolment(path).vector)
    turns = diarizer.assign(utt.audio, utt.start, utt.end, tracker.direction)   # worker thread
    names = diarizer.display_names()         # {"S1": "Clinician", "S2": "Patient"}
    fixed = diarizer.recluster()             # at Stop: turn index → label
"""

from appliance.diarize.direction import (
    Direction,
    DirectionFinder,
    DirectionTracker,
    estimate_direction,
    finder_for,
)
from appliance.diarize.embedder import (
    DVectorEmbedder,
    Embedder,
    SherpaEmbedder,
    make_embedder,
    pool,
    voiced_seconds,
)
from appliance.diarize.enrol import Enrolment, EnrolmentError, enrol, load_enrolment, save_enrolment
from appliance.diarize.online import OnlineDiarizer, Turn

__all__ = [
    "DVectorEmbedder", "Direction", "DirectionFinder", "DirectionTracker", "Embedder", "Enrolment",
    "EnrolmentError", "OnlineDiarizer", "SherpaEmbedder", "Turn", "enrol", "estimate_direction", "finder_for",
    "load_enrolment", "make_embedder", "pool", "save_enrolment", "voiced_seconds",
]
