"""Diarization as the daemon uses it: one labeller per visit over a shared embedder.

The embedding model is loaded once; each visit gets a fresh OnlineDiarizer (labels start
at S1 again) primed with the clinician's enrolled voice print when there is one. A
missing model disables labelling with a logged reason instead of stopping the device:
a transcript without labels still beats no transcript.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from appliance.config.schema import ApplianceConfig
from appliance.diarize.embedder import Embedder, make_embedder
from appliance.diarize.enrol import EnrolmentError, enrol, load_enrolment, save_enrolment
from appliance.diarize.online import OnlineDiarizer

log = logging.getLogger(__name__)


def enrolment_path(cfg: ApplianceConfig) -> Path:
    return Path(cfg.paths.state_dir) / "enrolment" / "clinician.json"


class VisitDiarization:
    def __init__(self, cfg: ApplianceConfig) -> None:
        self.cfg = cfg
        self.embedder: Embedder | None = None
        self.unavailable = ""
        if not cfg.diarize.enabled:
            self.unavailable = "diarization is turned off (diarize.enabled = false)"
            return
        try:
            self.embedder = make_embedder(cfg.diarize, cfg.paths.models_dir)
        except Exception as exc:
            self.unavailable = f"speaker labels are not available: {exc}"
            log.error("%s", self.unavailable)

    def describe(self) -> str:
        """For Settings: "on (model)", or why labels are off."""
        return self.unavailable or f"on ({getattr(self.embedder, 'name', 'model')})"

    def enrol_clinician(self, audio16k: np.ndarray, clinician: str) -> None:
        """Save the clinician's voice print from ~20 s of reading (the audio is not kept);
        EnrolmentError when the audio cannot make one."""
        if self.embedder is None:
            raise EnrolmentError(f"voice enrolment is not available: {self.unavailable}")
        vector = enrol(audio16k, self.embedder)
        save_enrolment(enrolment_path(self.cfg), vector, clinician, model=getattr(self.embedder, "name", ""))

    def new_visit(self) -> OnlineDiarizer | None:
        if self.embedder is None:
            return None
        enrolled = None
        path = enrolment_path(self.cfg)
        if path.exists():
            try:
                enrolled = load_enrolment(path, model=getattr(self.embedder, "name", None)).vector
            except EnrolmentError as exc:
                log.warning("clinician enrolment not used: %s", exc)
        return OnlineDiarizer(self.cfg.diarize, self.embedder, enrolled=enrolled)
