"""Diarization as the daemon uses it: one labeller per visit over a shared embedder.

The embedding model is loaded once; each visit gets a fresh OnlineDiarizer (labels start
at S1 again) primed with the clinician's enrolled voice print when there is one. A
missing model disables labelling with a logged reason instead of stopping the device:
a transcript without labels still beats no transcript.
"""

from __future__ import annotations

import logging
from pathlib import Path

from appliance.config.schema import ApplianceConfig
from appliance.diarize.embedder import Embedder, make_embedder
from appliance.diarize.enrol import EnrolmentError, load_enrolment
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
