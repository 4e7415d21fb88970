"""Settings-screen tools that use the microphone outside a visit: mic test and voice enrolment.

Both open their own Capture (RAM only). The enrolment keeps the ~20 s of 16 kHz audio in a
list of arrays just long enough to compute the voice print; only the print is saved. Both
refuse while a visit is live and give the microphone back as soon as a visit starts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from appliance.capture import Capture, CapturedBlock
from appliance.config.schema import ApplianceConfig
from appliance.daemon.controller import SessionController
from appliance.diarize.enrol import EnrolmentError
from appliance.speech.visit import CaptureFactory

log = logging.getLogger(__name__)


class ToolBusy(RuntimeError):
    """The microphone is in use; the message says by what."""


class MicTools:
    def __init__(self, cfg: ApplianceConfig, controller: SessionController,
                 capture_factory: CaptureFactory | None = None) -> None:
        self.cfg = cfg
        self.controller = controller
        self.capture_factory = capture_factory or (lambda sink: Capture(cfg.capture, sink))
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._capture: Capture | None = None
        self._status: dict[str, Any] = {"mode": "idle", "message": ""}
        controller.add_listener(self._on_event)

    # -- commands ------------------------------------------------------------------------------
    def start_mic_test(self) -> None:
        self._launch("mic-test", self.cfg.panel.mic_test_seconds, None)

    def start_enrolment(self, clinician: str) -> None:
        clinician = clinician.strip()
        if not clinician:
            raise ValueError("Please type the clinician's name before recording the voice.")
        speakers = self.controller.speakers
        if speakers is None or speakers.embedder is None:
            why = speakers.unavailable if speakers is not None else "the speaker model is not loaded"
            raise ToolBusy(f"Voice enrolment is not available: {why}.")
        self._launch("enrol", self.cfg.panel.enrol_seconds, clinician)

    def cancel(self) -> None:
        self._cancel.set()

    def status(self) -> dict[str, Any]:
        with self._lock:
            st = dict(self._status)
            cap = self._capture
        if cap is not None:
            cs = cap.status()
            st.update(levels_dbfs=[round(x, 1) for x in cs.levels_dbfs], capture_message=cs.message,
                      capture_state=cs.state, heard_s=round(cap.status_time(), 1))
        return st

    # -- worker --------------------------------------------------------------------------------
    def _on_event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "state" and data.get("state") == "recording":
            self._cancel.set()  # a visit takes the microphone back

    def _launch(self, mode: str, seconds: float, clinician: str | None) -> None:
        with self._lock:
            if self.controller.session is not None:
                raise ToolBusy("A visit is in progress; stop it before using the microphone here.")
            if self._thread is not None and self._thread.is_alive():
                raise ToolBusy("The microphone test or enrolment is already running.")
            self._cancel.clear()
            # "tool" outlives the run: its card on Settings keeps showing how it ended.
            self._status = {"mode": mode, "tool": mode, "message": "Starting the microphone…", "seconds": seconds}
            self._thread = threading.Thread(target=self._run, args=(mode, seconds, clinician),
                                            name=f"panel-{mode}", daemon=True)
            self._thread.start()

    def _set(self, **st: Any) -> None:
        with self._lock:
            self._status = {k: v for k, v in {**self._status, **st}.items() if k != "levels_dbfs"}

    def _run(self, mode: str, seconds: float, clinician: str | None) -> None:
        chunks: list[np.ndarray] = []  # enrolment audio, RAM only, dropped when this returns
        sink: Callable[[CapturedBlock], None] = (lambda b: chunks.append(b.mono16k.copy())) if mode == "enrol" \
            else (lambda _b: None)
        cap = self.capture_factory(sink)
        try:
            cap.start()
        except Exception as exc:
            self._set(mode="idle", result="error", message=f"The microphone could not be opened: {exc}")
            return
        with self._lock:
            self._capture = cap
        self._set(message="Please read aloud now…" if mode == "enrol" else "Speak: the bar should move.")
        t0 = time.monotonic()
        try:
            while not self._cancel.wait(0.2):
                if cap.status_time() >= seconds or time.monotonic() - t0 > seconds * 3 or cap.wait_finished(0):
                    break
        finally:
            with self._lock:
                self._capture = None
            cap.stop()
        if self._cancel.is_set():
            self._set(mode="idle", result="cancelled", message="Stopped: the microphone was needed for a visit.")
            return
        if mode == "mic-test":
            self._set(mode="idle", result="ok", message="Microphone test finished.")
            return
        self._set(message="Making the voice print…")
        try:
            audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
            chunks.clear()
            speakers = self.controller.speakers
            assert speakers is not None
            speakers.enrol_clinician(audio, clinician or "")
            del audio
            self.controller.store.audit("panel", "enrol", None, clinician_set=True)
            self._set(mode="idle", result="ok", message=f"Voice enrolled for {clinician}. Only the voice "
                      "print was kept; the recording is gone.")
        except EnrolmentError as exc:
            self._set(mode="idle", result="error", message=str(exc))
        except Exception as exc:  # never let a tool take the panel down
            log.exception("enrolment failed")
            self._set(mode="idle", result="error", message=f"Enrolment failed: {exc}")
