"""The session controller: the one place that starts, pauses and stops a visit.

The panel, the physical button and the control socket all call this object, so they
can never disagree about the state. The audio side of a visit (capture, recognition, speaker
labels) is its VisitAudio (speech/visit.py); this object adds the store, the state machine and the
storage guard. Order matters for the promises:
- pause closes the input stream *before* the utterance in flight is flushed, so
  nothing said during a pause reaches any buffer;
- stop drains recognition before the session is marked stopped, so a stopped session
  holds every utterance;
- nothing transcribed is dropped when the store cannot be written (full disk): utterances and
  state changes wait in RAM (storage.py) and are written, in order, when a retry succeeds;
- with a refined pass (asr.refine_model, speech/refine.py) each stored utterance's audio goes to it,
  and its text arrives after Stop as one new revision; the live text is the transcript until then.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from appliance.capture import CaptureStatus
from appliance.config.schema import ApplianceConfig
from appliance.daemon.alerts import Alerts
from appliance.daemon.storage import STORAGE_FULL, StorageGuard, is_disk_full
from appliance.diarize.visit import VisitDiarization
from appliance.speech.pipeline import FinalSegment, PartialText
from appliance.speech.refine import Refiner
from appliance.speech.visit import SpeechParts, VisitAudio
from appliance.store import Session, SessionStore, State

log = logging.getLogger(__name__)

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
    refine: dict[str, Any] | None = None  # the refined pass's progress (None: no refined pass)

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
            "refine": self.refine,
            "capture": None if cap is None else {
                "state": cap.state, "device": cap.device, "message": cap.message,
                "levels_dbfs": [round(x, 1) for x in cap.levels_dbfs],
                "clipping": cap.clipping, "muted_suspected": cap.muted_suspected,
            },
            "storage": self.storage,
        }


class SessionController:
    def __init__(self, cfg: ApplianceConfig, store: SessionStore, speech: SpeechParts, alerts: Alerts, *,
                 storage_notice: str = "") -> None:
        """``alerts``: for IT (ctl status, systemd STATUS, the clinic's status topic);
        ``storage_notice``: said with the storage status until restart (a damaged database set aside)."""
        self.cfg = cfg
        self.store = store
        self.alerts = alerts
        self.unavailable = speech.unavailable  # why recording is impossible, in plain words
        self._lock = threading.RLock()
        self._session: Session | None = None
        self._offset = 0.0  # recorded time before this capture started (resumed after a crash)
        self._segments = 0
        self._listeners: list[Callable[[str, dict[str, Any]], None]] = []
        dc = cfg.daemon
        self.storage = StorageGuard(cfg.paths.state_dir, dc.min_free_mb, dc.held_segments_max, alerts,
                                    notice=storage_notice)
        self._unsaved: deque[tuple[str, str]] = deque()  # (actor, state) commands not yet in the store
        self._stopping: str | None = None  # actor of a Stop whose writes wait for storage
        self._mic_held = False  # microphone paused because the RAM queue is at its limit
        self.visit = VisitAudio(cfg, speech, on_segment=self._store_segment, on_partial=self._partial)
        self.refiner = (Refiner(speech.refiner, cfg.asr, on_refined=self._keep_refined)
                        if speech.refiner is not None else None)

    @property
    def speakers(self) -> VisitDiarization | None:
        """Speaker labelling (its model, the clinician's enrolment), for the panel's Settings."""
        return self.visit.speakers

    def live_speaker_names(self) -> dict[str, str]:
        """What the live visit's labeller calls each label now; {} between visits."""
        return self.visit.speaker_names() if self._session is not None else {}

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
        if not self._mic_held and self._session and self._session.state == "recording" and self.visit.hold_input():
            self._mic_held = True
            log.error("%d utterances wait for storage: microphone paused", self.storage.held)

    def _write_segment(self, seg: FinalSegment) -> None:
        seg_id = self.store.add_segment(seg.session_id, seg.start, seg.end, seg.speaker, seg.text,
                                        confidence=seg.confidence, word_confidence=seg.word_confidence,
                                        speaker_uncertain=seg.uncertain)
        self.visit.note_stored(seg.turns, seg_id)
        if self.refiner is not None and seg.audio is not None:
            self.refiner.add(seg_id, seg.start, seg.end, seg.text, seg.audio)
        self._save_voiceprints(seg, seg_id)
        self._segments += 1
        log.info("segment stored", extra={"session_id": seg.session_id, "segment_id": seg_id})
        self._emit("segment", {"session_id": seg.session_id, "id": seg_id, "start": seg.start,
                               "end": seg.end, "speaker": seg.speaker, "text": seg.text,
                               "speaker_uncertain": seg.uncertain})

    def _save_voiceprints(self, seg: FinalSegment, seg_id: str) -> None:
        """Keep what the labeller learnt with the segment, so a crash does not cost the labels."""
        try:
            prints = self.visit.voiceprints(seg.turns, seg_id)
            if prints:
                self.store.save_voiceprints(seg.session_id, prints)
        except Exception:  # the segment is stored; only the labels of a crashed visit are at stake
            log.exception("could not keep the voice prints of a segment")

    def _partial(self, p: PartialText) -> None:
        self._emit("partial", {"session_id": p.session_id, "start": p.start, "text": p.text})

    # -- state ---------------------------------------------------------------------
    @property
    def session(self) -> Session | None:
        return self._session

    def snapshot(self) -> Snapshot:
        with self._lock:
            s, visit = self._session, self.visit
            state = "stopping" if self._stopping else s.state if s else "idle"
            return Snapshot(state, s, self._offset + visit.heard_seconds(), visit.capture_status(), self._segments,
                            visit.pending_seconds(), self.storage.status(), dict(visit.stats.asr_events),
                            self.refiner.status() if self.refiner is not None else None)

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
            if self._mic_held:
                self._mic_held = False
                if self._session and self._session.state == "recording":
                    self.visit.release_input()
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
            self.visit.new_visit()
            if self.refiner is not None:
                self.refiner.begin(session.id)
            self.visit.open(session.id, self._offset)
            return self._refresh(actor, "recording")

    def pause(self, actor: str = "panel") -> Session:
        with self._lock:
            s = self._require("pause", "recording")
            self.visit.pause()  # the input closes before the utterance in flight is flushed
            log.info("paused", extra={"session_id": s.id})
            return self._refresh(actor, "paused")

    def resume(self, actor: str = "panel") -> Session:
        with self._lock:
            s = self._require("resume", "paused")
            self.visit.resume(s.id, self._offset)
            return self._refresh(actor, "recording")

    def stop(self, actor: str = "panel") -> Session:
        """Ends the recording at once. If the store cannot be written, the visit waits in RAM as
        'stopping' and ControlError says so; the heartbeat finishes the Stop when space is freed."""
        with self._lock:
            if self._stopping is None:
                self._require("stop", "recording", "paused")
                self._close_capture()
                if not self.visit.drain(self.cfg.daemon.stop_timeout_s):
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
        if self.refiner is not None:
            self.refiner.end(done.id)  # its last window; the result comes as a revision (_keep_refined)
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

    def refining(self, session_id: str) -> bool:
        """The refined pass is still at work on this visit (Review says so)."""
        return self.refiner is not None and self.refiner.busy_with(session_id)

    def _keep_refined(self, session_id: str, texts: dict[str, str], live: dict[str, str]) -> None:
        """From the refined pass's thread: its text as one new revision (unless the visit was sent)."""
        kept = self.store.refine_transcript(session_id, texts, live) if texts else None
        rev, lines = kept if kept is not None else (None, 0)  # lines a person edited meanwhile are not counted
        log.info("refined text kept as revision %s (%d lines)", rev, lines, extra={"session_id": session_id})
        self._emit("refined", {"session_id": session_id, "revision": rev, "lines": lines})

    def _relabel(self) -> None:
        """Stop: re-cluster with hindsight, correct stored labels, name the speakers."""
        s = self._session
        relabelled = self.visit.relabel()
        if relabelled is None or s is None:
            return
        current = {g.id: g.speaker for g in self.store.read_transcript(s.id, actor="diarizer", reason="relabel")}
        for seg_id, label in relabelled.speakers.items():
            if current.get(seg_id) not in (None, label):
                self.store.set_segment_speaker(s.id, seg_id, label, actor="diarizer")
        for label, name in relabelled.names.items():
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
    def _close_capture(self) -> None:
        heard = self.visit.close()
        self._mic_held = False
        if heard is not None:
            self._offset += heard
            assert self._session is not None
            try:
                self.store.set_recorded_seconds(self._session.id, self._offset)
            except Exception as exc:  # written again at Stop or by the heartbeat
                self.storage.note_failure(exc)

    def wait_source_finished(self, timeout: float | None = None) -> bool:
        """For a file source (demo, tests): True once the whole file has been captured."""
        return self.visit.wait_source_finished(timeout)

    def recover(self) -> list[str]:
        """At start: visits cut off by a crash become paused + interrupted; the newest is current."""
        with self._lock:
            ids = self.store.recover_interrupted()
            if ids:
                self._session = self.store.get_session(ids[-1])
                self._offset = self._session.recorded_seconds
                prints = self.store.load_voiceprints(self._session.id)
                self.visit.restore(prints)
                log.info("speaker labels restored from %d turns", len(prints), extra={"session_id": self._session.id})
                log.warning("recovered interrupted visit", extra={"session_id": self._session.id})
            return ids

    def shutdown(self) -> None:
        """SIGTERM: store the utterance in flight, leave the visit paused + interrupted."""
        with self._lock:
            if self.refiner is not None:
                self.refiner.drop_all()  # its audio goes with the process; the live text stands
            s = self._session
            if s is None:
                return
            if s.state == "recording":
                self._close_capture()
                self.visit.drain(self.cfg.daemon.stop_timeout_s)
                self._refresh("shutdown", "paused")
            if not self.storage.flush(self._write_segment) or not self._save_states():
                log.error("exiting with %d utterances that could not be stored (storage full)",
                          self.storage.held, extra={"session_id": s.id})
            # recover() marks it interrupted at the next start, as after a crash.
