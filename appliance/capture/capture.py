"""The capture stage: a reader thread that turns a source into CapturedBlocks for a sink.

Pause closes the source (for a microphone: the PortAudio stream), so nothing is read
while paused; an unplugged device is retried every cfg.reconnect_seconds while the
thread, the sink and the stream time carry on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from appliance.capture.blocks import CapturedBlock
from appliance.capture.dsp import FLOOR_DBFS
from appliance.capture.processor import BlockProcessor
from appliance.capture.source import AudioSource, CaptureError, DeviceUnavailable
from appliance.capture.status import (
    ERROR,
    MSG_FINISHED,
    MSG_NOT_FOUND,
    MSG_PAUSED,
    MSG_STOPPED,
    MSG_UNPLUGGED,
    OK,
    PAUSED,
    STOPPED,
    UNPLUGGED,
    CaptureStatus,
    error_message,
    ok_message,
)
from appliance.config.schema import CaptureConfig

log = logging.getLogger(__name__)

Sink = Callable[[CapturedBlock], None]
CLOSE_WAIT_S = 5.0  # a first PortAudio read can take ~2 s (PulseAudio start-up); stop/pause wait that long


def make_source(cfg: CaptureConfig) -> AudioSource:
    """The source cfg.source names; nothing is opened yet."""
    if cfg.source == "file":
        from appliance.capture.file_source import FileSource

        return FileSource(cfg)
    if cfg.source == "portaudio":
        from appliance.capture.portaudio_source import PortAudioSource

        return PortAudioSource(cfg)
    raise CaptureError(f"capture.source must be 'portaudio' or 'file' (got {cfg.source!r})")


class Capture:
    def __init__(self, cfg: CaptureConfig, sink: Sink, *, source: AudioSource | None = None) -> None:
        self._cfg = cfg
        self._sink = sink
        self._source = source if source is not None else make_source(cfg)
        self._cv = threading.Condition()  # guards everything below and the processor
        self._gate = threading.RLock()  # held while the sink runs: pause() waits on it
        self._thread: threading.Thread | None = None
        self._proc = BlockProcessor(cfg)
        self._state, self._message = STOPPED, MSG_STOPPED
        self._pause_req = self._stop_req = False
        self._open = False  # the source is open (reader-owned after start)
        self._had_device = False  # opened at least once since start: "unplugged", not "not found"
        self._finished = False
        self._done = threading.Event()
        self.error: BaseException | None = None  # why the reader ended in "error", if it did

    # -- control ----------------------------------------------------------------------
    def start(self) -> None:
        """Open the source (a broken file raises CaptureError here) and start reading."""
        with self._cv:
            if self._thread is not None and self._thread.is_alive():
                raise RuntimeError("capture is already running")
            self._proc = BlockProcessor(self._cfg)
            self._pause_req = self._stop_req = self._finished = self._had_device = False
            self.error = None
            self._done.clear()
        try:
            self._open_source()
            self._set_state(OK, "")
        except DeviceUnavailable as exc:  # a microphone may be plugged in later: wait for it
            log.warning("no input device at start: %s", exc)
            self._set_state(UNPLUGGED, MSG_NOT_FOUND)
        except CaptureError as exc:
            self._set_state(ERROR, error_message(str(exc)))
            raise
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._thread.start()

    def pause(self) -> None:
        """Close the input; when this returns no block is being or will be delivered."""
        with self._cv:
            if self._thread is None or self._stop_req or self._pause_req:
                return
            self._pause_req = True
            self._cv.notify_all()
        with self._gate:
            pass  # a sink call in progress ends before pause() returns; later ones see the flag
        if threading.current_thread() is not self._thread:
            with self._cv:
                if not self._cv.wait_for(lambda: not self._open or not self._alive(), CLOSE_WAIT_S):
                    log.error("the input did not close within %.0f s of pause", CLOSE_WAIT_S)

    def resume(self) -> None:
        with self._cv:
            self._pause_req = False
            self._cv.notify_all()

    def stop(self) -> None:
        """Close the input and end the reader thread; safe to call twice."""
        with self._cv:
            self._stop_req = True
            self._cv.notify_all()
        with self._gate:
            pass
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(CLOSE_WAIT_S)
            if thread.is_alive():
                log.error("capture thread did not end within %.0f s (input stuck?)", CLOSE_WAIT_S)
        with self._cv:
            if self._state != ERROR:
                self._state = STOPPED
                self._message = MSG_FINISHED if self._finished else MSG_STOPPED
        self._done.set()

    def wait_finished(self, timeout: float | None = None) -> bool:
        """For a file source: True once the whole file has been delivered to the sink."""
        self._done.wait(timeout)
        return self._finished

    # -- status -----------------------------------------------------------------------
    def status_time(self) -> float:
        """Seconds of 16 kHz audio delivered since start() (the t of the next block)."""
        with self._cv:
            return self._proc.t

    def status(self) -> CaptureStatus:
        with self._cv:
            state = self._state
            if self._pause_req and state not in (STOPPED, ERROR):
                state = PAUSED
            meter, src = self._proc.meter, self._source
            live = state == OK
            silent = meter.silent_seconds
            muted = live and silent >= self._cfg.silence_alert_seconds
            clipping = live and meter.clipping
            floor = (FLOOR_DBFS,) * src.channels
            if live:
                message = ok_message(src.name, clipping=clipping, muted_suspected=muted, silent_seconds=silent)
            else:
                message = MSG_PAUSED if state == PAUSED else self._message
            return CaptureStatus(
                state=state, device=src.name, rate=src.rate, channels=src.channels,
                levels_dbfs=meter.levels_dbfs if live else floor,
                peak_dbfs=meter.peak_dbfs if live else floor,
                clipping=clipping, silent_seconds=round(silent, 3), muted_suspected=muted, message=message,
            )

    # -- reader thread ------------------------------------------------------------------
    def _alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _set_state(self, state: str, message: str) -> None:
        with self._cv:
            if state != self._state:
                log.info("capture %s -> %s%s", self._state, state, f": {message}" if message else "")
            self._state, self._message = state, message
            if state != OK:
                self._proc.meter.clear()

    def _open_source(self) -> None:
        self._source.open()
        with self._cv:
            self._proc.set_format(self._source.rate, self._source.channels)
            self._open = self._had_device = True

    def _close_source(self) -> None:
        try:
            self._source.close()
        except Exception:  # closing must never take the reader down
            log.exception("closing the audio input failed")
        with self._cv:
            self._open = False
            self._cv.notify_all()

    def _idle(self, seconds: float) -> None:
        """Wait before retrying the input; pause and stop cut the wait short."""
        with self._cv:
            self._cv.wait_for(lambda: self._stop_req or self._pause_req, seconds)

    def _lost(self, state: str, message: str, exc: BaseException) -> None:
        log.warning("audio input %r: %s", self._source.name, exc)
        self._close_source()
        self._set_state(state, message)
        self._idle(self._cfg.reconnect_seconds)

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # a bug: report it instead of dying silently
            log.exception("capture reader failed")
            self.error = exc
            self._set_state(ERROR, error_message("the audio could not be processed"))
        finally:
            self._close_source()
            with self._cv:
                if self._finished:
                    self._state, self._message = STOPPED, MSG_FINISHED
            self._done.set()

    def _loop(self) -> None:
        while True:
            if self._stop_req:
                return
            if self._pause_req:
                self._close_source()
                self._set_state(PAUSED, MSG_PAUSED)
                with self._cv:
                    self._cv.wait_for(lambda: self._stop_req or not self._pause_req)
                continue
            if not self._open:
                try:
                    self._open_source()
                except DeviceUnavailable as exc:
                    self._lost(UNPLUGGED, MSG_UNPLUGGED if self._had_device else MSG_NOT_FOUND, exc)
                    continue
                except Exception as exc:
                    self._lost(ERROR, error_message(str(exc)), exc)
                    continue
                self._set_state(OK, "")
            try:
                raw = self._source.read()
            except DeviceUnavailable as exc:
                self._lost(UNPLUGGED, MSG_UNPLUGGED, exc)
                continue
            except Exception as exc:
                self._lost(ERROR, error_message(str(exc)), exc)
                continue
            if raw is None:  # end of a file
                with self._cv:
                    self._finished = True
                return
            last = self._source.at_end
            with self._cv:
                block = self._proc.process(raw, self._source.rate, last=last)
            with self._gate:
                if self._pause_req or self._stop_req:
                    continue  # read as pause was pressed: dropped, never delivered
                self._sink(block)
                with self._cv:
                    self._proc.delivered(block)
            if last:
                with self._cv:
                    self._finished = True
                return
