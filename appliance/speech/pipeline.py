"""The speech pipeline: 16 kHz audio → utterances → text → a stored segment.

VAD runs inline on the capture thread (cheap); recognition runs on a worker thread fed by
a queue bounded in seconds of audio, so a slow utterance never stalls capture. Audio
exists only in these RAM buffers and is dropped as soon as its utterance is transcribed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from appliance.asr.engine import Transcriber
from appliance.capture.blocks import CapturedBlock
from appliance.vad.utterance import RATE, Segmenter, Utterance

log = logging.getLogger(__name__)
STORE_ATTEMPTS = 5
STORE_RETRY_S = 0.2


@dataclass(frozen=True)
class FinalSegment:
    session_id: str
    start: float
    end: float
    text: str
    speaker: str = ""


@dataclass
class PipelineStats:
    utterances: int = 0
    dropped: int = 0
    failed: int = 0
    last_error: str = ""


class SpeechPipeline:
    def __init__(
        self,
        segmenter: Segmenter,
        transcriber: Transcriber,
        on_segment: Callable[[FinalSegment], None],
        *,
        max_queued_s: float = 300.0,
    ) -> None:
        self.segmenter = segmenter
        self.transcriber = transcriber
        self.on_segment = on_segment
        self.max_queued_s = max_queued_s
        self.stats = PipelineStats()
        self._queue: deque[tuple[str, Utterance]] = deque()
        self._queued_s = 0.0
        self._busy = False
        self._cond = threading.Condition()
        self._session: str | None = None
        self._offset = 0.0

    # -- capture side ------------------------------------------------------------
    def begin(self, session_id: str, offset: float) -> None:
        """Route what follows to ``session_id``; capture time 0 maps to ``offset``."""
        self._session, self._offset = session_id, offset

    def feed(self, block: CapturedBlock) -> None:
        if self._session is None:
            return  # not recording: the block is dropped here, never kept
        for utt in self.segmenter.feed(block.mono16k, self._offset + block.t):
            self._enqueue(self._session, utt)

    def end_utterance(self) -> None:
        """Close the utterance in flight (pause, stop, shutdown) and detach the session."""
        session, self._session = self._session, None
        for utt in self.segmenter.flush():
            if session is not None:
                self._enqueue(session, utt)

    def _enqueue(self, session: str, utt: Utterance) -> None:
        with self._cond:
            while self._queue and self._queued_s + utt.duration > self.max_queued_s:
                _, old = self._queue.popleft()  # recognition fell far behind: bound RAM
                self._queued_s -= old.duration
                self.stats.dropped += 1
                log.error("speech queue full: dropped a %.1f s utterance", old.duration)
            self._queue.append((session, utt))
            self._queued_s += utt.duration
            self.stats.utterances += 1
            self._cond.notify_all()

    # -- worker side -------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Recognition loop; a supervised component (an exception restarts it)."""
        while True:
            with self._cond:
                while not self._queue and not stop.is_set():
                    self._cond.wait(0.2)
                if not self._queue:
                    return
                session, utt = self._queue.popleft()
                self._queued_s -= utt.duration
                self._busy = True
            try:
                self._recognize(session, utt)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _recognize(self, session: str, utt: Utterance) -> None:
        try:
            result = self.transcriber.transcribe(utt.audio)
        except Exception as exc:  # one bad utterance must not take the visit with it
            self.stats.failed += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("recognition failed for %.1f s utterance at %.1f s", utt.duration, utt.start)
            result = None
        if result is not None and result.no_speech:
            return  # no invented text from noise
        text = "" if result is None else result.text.strip()  # failed: keep the timing, flag no text
        self._deliver(FinalSegment(session, round(utt.start, 3), round(utt.end, 3), text))

    def _deliver(self, seg: FinalSegment) -> None:
        # A store hiccup (database briefly locked by a reader) must not lose the segment.
        for attempt in range(STORE_ATTEMPTS):
            try:
                self.on_segment(seg)
                return
            except Exception as exc:
                self.stats.last_error = f"storing segment: {type(exc).__name__}: {exc}"
                log.exception("storing segment at %.1f s failed (attempt %d)", seg.start, attempt + 1)
                time.sleep(STORE_RETRY_S * (attempt + 1))
        self.stats.failed += 1

    def drain(self, timeout: float) -> bool:
        """Wait until every queued utterance is stored; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def pending_seconds(self) -> float:
        return self._queued_s + (self.segmenter.pending_audio().size / RATE)
