"""The session controller: the one place that starts, pauses and stops a visit.

The panel, the physical button and the control socket all call this object, so they
can never disagree about the state. Order matters for the promises:
- pause closes the input stream *before* the utterance in flight is flushed, so
  nothing said during a pause reaches any buffer;
- stop drains recognition before the session is marked stopped, so a stopped session
  holds every utterance;
- nothing transcribed is dropped when the store cannot be written (full disk): utterances and
  state changes wait in RAM (storage.py) and are written, in order, when a retry succeeds.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from appliance.capture import Capture, CapturedBlock, CaptureStatus
from appliance.config.schema import ApplianceConfig
from appliance.daemon.alerts import Alerts
from appliance.daemon.storage import STORAGE_FULL, StorageGuard, is_disk_full
from appliance.diarize.direction import Direction, DirectionTracker
from appliance.diarize.visit import VisitDiarization
from appliance.hardware.arrays import array_for_capture
from appliance.speech.pipeline import FinalSegment, PartialText, SpeechPipeline
from appliance.store import Session, SessionStore, State
from appliance.store.voiceprints import VoicePrint

log = logging.getLogger(__name__)

CaptureFactory = Callable[[Callable[[CapturedBlock], None]], Capture]


class ControlError(RuntimeError):
    """A request the current state does not allow, in words for the clinician."""


@dataclass(frozen=True)
class Snapshot:
    """What the panel, LED and systemd STATUS show."""

    state: str  # idle | recording | paused | stopping (stopped, waiting for storage)
    session: Session | None
    elapsed_s: float
    capture: CaptureStatus | None
    segments: int
    pending_s: float
    storage: dict[str, Any] | None = None
    # recognition events since the daemon started ("short": text implausibly short for the speech, …)
    asr_events: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        cap = self.capture
        return {
            "state": self.state,
            "session_id": self.session.id if self.session else None,
            "name": self.session.name if self.session else None,
            "interrupted": bool(self.session and self.session.interrupted),
            "elapsed_s": round(self.elapsed_s, 1),
            "segments": self.segments,
            "pending_s": round(self.pending_s, 1),
            "asr_events": dict(self.asr_events),
            "capture": None if cap is None else {
                "state": cap.state, "device": cap.device, "message": cap.message,
                "levels_dbfs": [round(x, 1) for x in cap.levels_dbfs],
                "clipping": cap.clipping, "muted_suspected": cap.muted_suspected,
            },
            "storage": self.storage,
        }


class SessionController:
    def __init__(
        self,
        cfg: ApplianceConfig,
        store: SessionStore,
        pipeline: SpeechPipeline,
        capture_factory: CaptureFactory,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.pipeline = pipeline
        self.capture_factory = capture_factory
        self._lock = threading.RLock()
        self._session: Session | None = None
        self._capture: Capture | None = None
        self._offset = 0.0  # recorded time before this capture started (resumed after a crash)
        self._segments = 0
        self._listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self.unavailable = ""  # why recording is impossible (e.g. speech model missing), in plain words
        self.diarization: VisitDiarization | None = None  # speaker labels, when the model is installed
        self.alerts = Alerts()  # for IT: ctl status, systemd STATUS, the clinic's status topic
        self._turn_segments: dict[int, str] = {}  # diarizer turn → stored segment, for relabelling at Stop
        dc = cfg.daemon
        self.storage = StorageGuard(cfg.paths.state_dir, dc.min_free_mb, dc.held_segments_max, self.alerts)
        self._unsaved: deque[tuple[str, str]] = deque()  # (actor, state) commands not yet in the store
        self._stopping: str | None = None  # actor of a Stop whose writes wait for storage
        self._mic_held = False  # microphone paused because the RAM queue is at its limit
        pipeline.on_segment = self._store_segment
        pipeline.on_partial = self._partial

    # -- events for the panel / LED ------------------------------------------------
    def add_listener(self, fn: Callable[[str, dict[str, Any]], None]) -> None:
        self._listeners.append(fn)

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        for fn in self._listeners:
            try:
                fn(kind, data)
            except Exception:  # a broken listener must not stop a recording
                log.exception("listener failed on %s", kind)

    def _store_segment(self, seg: FinalSegment) -> None:
        """From the recognition worker: never raises, never drops (see storage.py)."""
        self.storage.hold(seg)
        if not self.storage.flush(self._write_segment) and self.storage.at_limit:
            self._hold_microphone()

    def _hold_microphone(self) -> None:
        """The RAM queue is full: stop hearing more than can be kept (resumed once it is saved)."""
        cap = self._capture
        if cap is not None and not self._mic_held and self._session and self._session.state == "recording":
            cap.pause()
            self._mic_held = True
            log.error("%d utterances wait for storage: microphone paused", self.storage.held)

    def _write_segment(self, seg: FinalSegment) -> None:
        seg_id = self.store.add_segment(seg.session_id, seg.start, seg.end, seg.speaker, seg.text,
                                        confidence=seg.confidence, word_confidence=seg.word_confidence,
                                        speaker_uncertain=seg.uncertain)
        self._turn_segments.update(dict.fromkeys(seg.turns, seg_id))
        self._save_voiceprints(seg, seg_id)
        self._segments += 1
        log.info("segment stored", extra={"session_id": seg.session_id, "segment_id": seg_id})
        self._emit("segment", {"session_id": seg.session_id, "id": seg_id, "start": seg.start,
                               "end": seg.end, "speaker": seg.speaker, "text": seg.text,
                               "speaker_uncertain": seg.uncertain})

    def _save_voiceprints(self, seg: FinalSegment, seg_id: str) -> None:
        """Keep what the labeller learnt with the segment, so a crash does not cost the labels."""
        diarizer = self.pipeline.diarizer
        if diarizer is None or not seg.turns:
            return
        try:
            self.store.save_voiceprints(seg.session_id, [
                VoicePrint(i, seg_id, a, b, label, v, d.azimuth_deg if d else None, d.confidence if d else None)
                for i, a, b, label, v, d in diarizer.export_turns(seg.turns)])
        except Exception:  # the segment is stored; only the labels of a crashed visit are at stake
            log.exception("could not keep the voice prints of a segment")

    def _restore_diarizer(self, session_id: str) -> None:
        """A visit recovered after a crash goes on with the labeller's memory from the store."""
        diarizer = self.diarization.new_visit() if self.diarization else None
        self.pipeline.diarizer = diarizer
        self._turn_segments = {}
        if diarizer is None:
            return
        prints = self.store.load_voiceprints(session_id)
        diarizer.restore([(p.start, p.end, p.label, p.vector,
                           None if p.azimuth is None else Direction(p.azimuth, p.confidence or 0.0))
                          for p in prints])
        self._turn_segments = {i: p.segment_id for i, p in enumerate(prints)}
        log.info("speaker labels restored from %d turns", len(prints), extra={"session_id": session_id})

    def _partial(self, p: PartialText) -> None:
        self._emit("partial", {"session_id": p.session_id, "start": p.start, "text": p.text})

    # -- state ---------------------------------------------------------------------
    @property
    def session(self) -> Session | None:
        return self._session

    def snapshot(self) -> Snapshot:
        with self._lock:
            s, cap = self._session, self._capture
            state = "stopping" if self._stopping else s.state if s else "idle"
            elapsed = self._offset + (cap.status_time() if cap else 0.0)
            return Snapshot(state, s, elapsed, cap.status() if cap else None, self._segments,
                            self.pipeline.pending_seconds(), self.storage.status(),
                            dict(self.pipeline.stats.asr_events))

    def _refresh(self, actor: str, new_state: str) -> Session:
        """The command takes effect in the room at once; the store gets it now, or in order once
        it can be written again (the session in RAM shows the new state meanwhile)."""
        assert self._session is not None
        self._unsaved.append((actor, new_state))
        self._session = replace(self._session, state=State(new_state))
        self._save_states()
        self._emit("state", self.snapshot().as_dict())
        return self._session

    def _save_states(self) -> bool:
        """Write the state commands the store has not seen; True when none is left."""
        while self._unsaved and self._session is not None:
            actor, new_state = self._unsaved[0]
            try:
                self.store.transition(self._session.id, new_state, actor)
            except Exception as exc:
                if not is_disk_full(exc):
                    self._unsaved.clear()
                    self._session = self.store.get_session(self._session.id)
                    raise
                self.storage.note_failure(exc)
                return False
            self._unsaved.popleft()
            self.storage.note_success()
            if not self._unsaved:
                self._session = self.store.get_session(self._session.id)
        return True

    def retry_storage(self) -> None:
        """Heartbeat: write what waits in RAM; finish a Stop that waited for storage."""
        with self._lock:
            self.storage.publish()  # free space may have run low (or been freed) since the last beat
            if not self.storage.flush(self._write_segment) or not self._save_states():
                return
            if self._mic_held and self._capture is not None:
                self._mic_held = False
                if self._session and self._session.state == "recording":
                    self._capture.resume()
                    log.warning("utterances saved: microphone listening again")
            if self._stopping:
                with contextlib.suppress(ControlError):  # still waiting; said in the status
                    self._finish_stop()

    # -- commands --------------------------------------------------------------------
    def start(self, name: str = "", templates: tuple[str, ...] = (), consent: bool = False,
              clinician: str | None = None, actor: str = "panel") -> Session:
        with self._lock:
            if self._session is not None:
                raise ControlError(f"a visit is already {self._session.state}; stop it first")
            if self.unavailable:
                raise ControlError(f"cannot start: {self.unavailable}")
            refusal = self.storage.start_refusal()
            if refusal:
                raise ControlError(f"cannot start: {refusal}")
            dev = self.cfg.device
            session = self.store.create_session(
                name=name.strip(), room=dev.room, clinician=clinician or dev.clinician,
                device_id=dev.id, site=dev.site, templates=list(templates), consent=consent,
            )
            self._session, self._offset, self._segments = session, 0.0, 0
            self._turn_segments = {}
            self.pipeline.diarizer = self.diarization.new_visit() if self.diarization else None
            self._open_capture()
            return self._refresh(actor, "recording")

    def pause(self, actor: str = "panel") -> Session:
        with self._lock:
            s = self._require("pause", "recording")
            assert self._capture is not None
            self._capture.pause()  # first: nothing more is read from the microphone
            self.pipeline.end_utterance()
            log.info("paused", extra={"session_id": s.id})
            return self._refresh(actor, "paused")

    def resume(self, actor: str = "panel") -> Session:
        with self._lock:
            s = self._require("resume", "paused")
            self.pipeline.begin(s.id, self._offset)
            if self._capture is None:  # a visit recovered after a crash
                self._open_capture()
            else:
                self._capture.resume()
            return self._refresh(actor, "recording")

    def stop(self, actor: str = "panel") -> Session:
        """Ends the recording at once. If the store cannot be written, the visit waits in RAM as
        'stopping' and ControlError says so; the heartbeat finishes the Stop when space is freed."""
        with self._lock:
            if self._stopping is None:
                self._require("stop", "recording", "paused")
                self._close_capture()
                if not self.pipeline.drain(self.cfg.daemon.stop_timeout_s):
                    log.error("recognition did not finish within %.0f s at stop", self.cfg.daemon.stop_timeout_s)
                self._stopping = actor
                self._emit("state", self.snapshot().as_dict())
            return self._finish_stop()

    def _finish_stop(self) -> Session:
        assert self._session is not None and self._stopping is not None
        actor, sid = self._stopping, self._session.id

        def waiting() -> ControlError:
            return ControlError(f"{STORAGE_FULL}. Recording has ended; the visit is saved as stopped as soon "
                                f"as space is freed ({self.storage.held} utterances wait).")
        if not self.storage.flush(self._write_segment) or not self._save_states():
            raise waiting()
        try:
            self.store.set_recorded_seconds(sid, self._offset)
            self._relabel()
            self.store.delete_voiceprints(sid)  # the labeller's memory ends with the visit
            self._unsaved.append((actor, "stopped"))
            if not self._save_states():
                self._unsaved.pop()
                raise waiting()
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            self.storage.note_failure(exc)
            raise waiting() from None
        self._stopping = None
        done, self._session = self._session, None
        try:
            if self.store.segment_count(done.id) == 0:
                # Said explicitly, so nobody mistakes an empty visit for a lost one.
                self.store.audit(actor, "no-speech", done.id)
                log.warning("visit stopped with no speech detected", extra={"session_id": done.id})
                self._emit("no_speech", {"session_id": done.id})
        except Exception:  # the visit is stopped and complete; only the no-speech note is missing
            log.exception("could not record the no-speech event")
        self._emit("state", self.snapshot().as_dict())
        return done

    def _relabel(self) -> None:
        """Stop: re-cluster with hindsight, correct stored labels, name the speakers."""
        diarizer, s = self.pipeline.diarizer, self._session
        if diarizer is None or s is None:
            return
        labels = diarizer.recluster()
        by_segment: dict[str, str] = {}
        for turn, label in sorted(labels.items()):
            if turn in self._turn_segments:
                by_segment.setdefault(self._turn_segments[turn], label)  # a segment's first turn decides
        current = {g.id: g.speaker for g in self.store.read_transcript(s.id, actor="diarizer", reason="relabel")}
        for seg_id, label in by_segment.items():
            if current.get(seg_id) not in (None, label):
                self.store.set_segment_speaker(s.id, seg_id, label, actor="diarizer")
        for label, name in diarizer.display_names().items():
            self.store.set_speaker_name(s.id, label, name, actor="diarizer")
        self._emit("relabelled", {"session_id": s.id})

    def toggle(self, actor: str = "button") -> Session:
        """Short press: start when idle, stop otherwise."""
        return self.start(actor=actor) if self._session is None else self.stop(actor=actor)

    def pause_toggle(self, actor: str = "button") -> Session:
        """Long press: pause when recording, resume when paused."""
        s = self._session
        if s is None:
            raise ControlError("no visit to pause")
        return self.pause(actor) if s.state == "recording" else self.resume(actor)

    def _require(self, verb: str, *states: str) -> Session:
        s = self._session
        if s is None:
            raise ControlError(f"cannot {verb}: no visit is in progress")
        if self._stopping:
            raise ControlError(f"cannot {verb}: the visit has stopped and waits for storage to be saved")
        if s.state not in states:
            raise ControlError(f"cannot {verb}: the visit is {s.state}")
        return s

    # -- capture lifecycle ---------------------------------------------------------------
    def _open_capture(self) -> None:
        assert self._session is not None
        self.pipeline.begin(self._session.id, self._offset)
        self._capture = self.capture_factory(self.pipeline.feed)
        self._capture.start()
        self._attach_direction()

    def _attach_direction(self) -> None:
        """With a known microphone array, speaker labels also use where the voice comes from."""
        self.pipeline.tracker = None
        if self._capture is None or self.pipeline.diarizer is None or not self.cfg.diarize.use_direction:
            return
        st = self._capture.status()
        try:
            array = array_for_capture(self.cfg.capture.array, st.device, self.cfg.capture.arrays_dir)
        except ValueError as exc:  # config check names the key; a visit still records without direction
            log.error("no direction of arrival: capture.array: %s", exc)
            return
        if array is not None and array.usable_with(st.channels):
            self.pipeline.tracker = DirectionTracker(array, st.rate)
            log.info("direction of arrival from %s", array.name)

    def _close_capture(self) -> None:
        cap, self._capture = self._capture, None
        if cap is not None:
            cap.stop()
            self._offset += cap.status_time()
            assert self._session is not None
            try:
                self.store.set_recorded_seconds(self._session.id, self._offset)
            except Exception as exc:  # written again at Stop or by the heartbeat
                self.storage.note_failure(exc)
        self._mic_held = False
        self.pipeline.end_utterance()

    def wait_source_finished(self, timeout: float | None = None) -> bool:
        """For a file source (demo, tests): True once the whole file has been captured."""
        cap = self._capture
        return cap.wait_finished(timeout) if cap is not None else True

    def recover(self) -> list[str]:
        """At start: visits cut off by a crash become paused + interrupted; the newest is current."""
        with self._lock:
            ids = self.store.recover_interrupted()
            if ids:
                self._session = self.store.get_session(ids[-1])
                self._offset = self._session.recorded_seconds
                self._restore_diarizer(self._session.id)
                log.warning("recovered interrupted visit", extra={"session_id": self._session.id})
            return ids

    def shutdown(self) -> None:
        """SIGTERM: store the utterance in flight, leave the visit paused + interrupted."""
        with self._lock:
            s = self._session
            if s is None:
                return
            if s.state == "recording":
                self._close_capture()
                self.pipeline.drain(self.cfg.daemon.stop_timeout_s)
                self._refresh("shutdown", "paused")
            if not self.storage.flush(self._write_segment) or not self._save_states():
                log.error("exiting with %d utterances that could not be stored (storage full)",
                          self.storage.held, extra={"session_id": s.id})
            # recover() marks it interrupted at the next start, as after a crash.
