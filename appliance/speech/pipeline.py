"""The speech pipeline: 16 kHz audio → utterances → text → a stored segment.

VAD runs inline on the capture thread (cheap); recognition runs on a worker thread fed by
a queue bounded in seconds of audio, so a slow utterance never stalls capture. While
someone speaks, the worker offers a partial hypothesis every `partial_interval_s`; final
texts always go first. Audio exists only in these RAM buffers and is dropped as soon as
its utterance is transcribed.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from appliance.asr.engine import Cancelled, Engine, Recognition, RecognizerStream, transcribe_with
from appliance.capture.blocks import CapturedBlock
from appliance.vad.utterance import RATE, Segmenter, Utterance

log = logging.getLogger(__name__)


class Diarizer(Protocol):
    """One visit's speaker labeller (appliance.diarize.OnlineDiarizer). The pipeline only assigns;
    the controller keeps its turns across a restart and relabels them all with hindsight at Stop."""

    def assign(self, audio16k: np.ndarray, start: float, end: float, direction: Any = None) -> list[Any]: ...

    def export_turns(self, indices: tuple[int, ...]) -> list[tuple[int, float, float, str, np.ndarray, Any]]: ...

    def restore(self, turns: list[tuple[float, float, str, np.ndarray, Any]]) -> None: ...

    def recluster(self) -> dict[int, str]: ...

    def display_names(self) -> dict[str, str]: ...


class DirectionSource(Protocol):
    def feed(self, raw: np.ndarray, t: float) -> None: ...

    def direction(self, start: float, end: float) -> Any: ...


class FrontEnd(Protocol):
    def feed(self, raw: np.ndarray, rate: int, t: float) -> None: ...

    def enhance(self, start: float, end: float, direction: Any = None) -> np.ndarray | None: ...

    def reset(self) -> None: ...


STORE_ATTEMPTS = 5
STORE_RETRY_S = 0.2
LATENCY_WINDOW = 500  # recent final-text latencies kept for status and benchmarks


@dataclass(frozen=True)
class FinalSegment:
    session_id: str
    start: float
    end: float
    text: str
    speaker: str = ""  # diarizer label ("S1", …); "" when diarization is off
    turns: tuple[int, ...] = ()  # the diarizer's turn numbers in this segment (for relabelling at Stop)
    confidence: float | None = None  # exp(mean token log-probability) from the recogniser, when it gives one
    word_confidence: tuple[float, ...] | None = None  # one per word of `text`, when the recogniser gives them
    uncertain: bool = False  # the labeller was unsure who spoke (similar voices, no direction)
    # What recognition heard (the beam, else the mix), only for the refined pass (speech/refine.py); RAM only.
    audio: np.ndarray | None = field(default=None, repr=False, compare=False)


def _confidence(avg_logprob: float) -> float | None:
    """A recogniser's mean token log-probability as a 0–1 confidence (None if not a number)."""
    if math.isnan(avg_logprob):
        return None
    return math.exp(min(0.0, avg_logprob))


@dataclass(frozen=True)
class _Part:
    """Consecutive turns of one speaker inside an utterance."""

    start: float
    end: float
    label: str
    turns: tuple[int, ...]
    uncertain: bool


def _parts(turns: list[Any]) -> list[_Part]:
    """The diarizer's turns of one utterance, neighbours with the same label joined."""
    parts: list[_Part] = []
    for t in turns:
        unsure = bool(getattr(t, "uncertain", False))
        if parts and parts[-1].label == t.label:
            p = parts[-1]
            parts[-1] = _Part(p.start, t.end, p.label, (*p.turns, t.index), p.uncertain or unsure)
        else:
            parts.append(_Part(t.start, t.end, t.label, (t.index,), unsure))
    return parts


@dataclass(frozen=True)
class PartialText:
    session_id: str
    start: float
    text: str


@dataclass
class PipelineStats:
    utterances: int = 0
    dropped: int = 0
    failed: int = 0
    no_speech: int = 0
    partials: int = 0
    early_finals: int = 0  # finals whose text was decoded before the VAD closed the utterance
    # what recognition needed beyond one pass, by kind ("seek", "fallback", "short", …; see Recognition.events)
    asr_events: Counter[str] = field(default_factory=Counter)
    last_error: str = ""
    # seconds from the end of an utterance's audio to its stored text, assuming real-time capture
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))


@dataclass(frozen=True)
class _Speculation:
    start: float  # the utterance it belongs to
    speech_end: int  # samples of that utterance up to its last speech frame
    result: Recognition | None  # None: decoding failed, decode again at the end
    audio: np.ndarray  # what it decoded (the beam, else the mix)


@dataclass(frozen=True)
class _Queued:
    session: str
    utt: Utterance
    emitted_at: float  # monotonic time the VAD closed it
    detect_delay: float  # audio that had to arrive after utt.end before the VAD could close it


class SpeechPipeline:
    def __init__(
        self,
        segmenter: Segmenter,
        engine: Engine,
        on_segment: Callable[[FinalSegment], None],
        *,
        on_partial: Callable[[PartialText], None] | None = None,
        partial_interval_s: float = 1.0,
        max_queued_s: float = 300.0,
        frontend: FrontEnd | None = None,
        keep_audio: bool = False,
    ) -> None:
        self.segmenter = segmenter
        self.engine = engine
        self.on_segment = on_segment
        self.on_partial = on_partial
        self.partial_interval_s = partial_interval_s
        self.max_queued_s = max_queued_s
        self.stats = PipelineStats()
        self._queue: deque[_Queued] = deque()
        self._queued_s = 0.0
        self._busy = False
        self._cond = threading.Condition()
        self._vad_lock = threading.Lock()  # segmenter state is shared by capture and worker
        self._session: str | None = None
        self._last_session: str | None = None
        self._offset = 0.0
        # the in-flight utterance's recognizer stream, fed incrementally for partials
        self._stream: RecognizerStream | None = None
        self._stream_start: float | None = None
        self._stream_fed = 0
        self._next_partial = 0.0
        self._partial_stream: RecognizerStream | None = None  # set while a partial decodes
        # Engines that decode the whole utterance at finish() (Whisper) start on it as soon as
        # the speaker falls silent; the result stands if no speech followed.
        self._speculative = engine.abilities.offline
        self._spec: _Speculation | None = None
        # Speaker labels are computed on their own thread while the text decodes (one thread:
        # the online diarizer assigns utterances in order), so they add nothing to latency.
        self._labeller: ThreadPoolExecutor | None = None
        # Diarization (optional): a labeller per visit, and a direction tracker fed raw frames.
        self.diarizer: Diarizer | None = None
        self.tracker: DirectionSource | None = None
        # The array's beam (appliance.frontend): finals decode it instead of the mono mix.
        self.frontend = frontend
        self.keep_audio = keep_audio  # each FinalSegment carries what recognition heard (the refined pass)

    # -- capture side ------------------------------------------------------------
    def begin(self, session_id: str, offset: float) -> None:
        """Route what follows to ``session_id``; capture time 0 maps to ``offset``."""
        if session_id != self._last_session:  # a new visit: the last one's words must not prompt this one
            self.engine.reset_context()
            self._last_session = session_id
        self._session, self._offset = session_id, offset

    def feed(self, block: CapturedBlock) -> None:
        session = self._session
        if session is None:
            return  # not recording: the block is dropped here, never kept
        t = self._offset + block.t
        if self.tracker is not None:
            self.tracker.feed(block.raw, t)  # phase spectra only, never samples
        if self.frontend is not None:
            self.frontend.feed(block.raw, block.rate, t)  # a bounded RAM ring, before the VAD can close an utterance
        with self._vad_lock:
            utts = self.segmenter.feed(block.mono16k, t)
        now = time.monotonic()
        for utt in utts:
            self._enqueue(_Queued(session, utt, now, t + block.duration - utt.end))
        if utts or self.segmenter.in_speech():
            with self._cond:
                self._cond.notify_all()

    def end_utterance(self) -> None:
        """Close the utterance in flight (pause, stop, shutdown) and detach the session."""
        session, self._session = self._session, None
        with self._vad_lock:
            utts = self.segmenter.flush()
        for utt in utts:
            if session is not None:
                self._enqueue(_Queued(session, utt, time.monotonic(), 0.0))
        self._forget_raw()

    def _forget_raw(self) -> None:
        """Detached, with nothing left to recognise: the front end's ring of raw audio goes now."""
        with self._cond:
            idle = self._session is None and not self._queue and not self._busy
        if idle and self.frontend is not None:
            self.frontend.reset()

    def _enqueue(self, item: _Queued) -> None:
        with self._cond:
            while self._queue and self._queued_s + item.utt.duration > self.max_queued_s:
                old = self._queue.popleft()  # recognition fell far behind: bound RAM
                self._queued_s -= old.utt.duration
                self.stats.dropped += 1
                log.error("speech queue full: dropped a %.1f s utterance", old.utt.duration)
            self._queue.append(item)
            self._queued_s += item.utt.duration
            self.stats.utterances += 1
            self._cond.notify_all()
        stream = self._partial_stream  # a final is waiting: the partial in progress gives way
        if stream is not None:
            stream.cancel()

    # -- worker side -------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Recognition loop; a supervised component (an exception restarts it)."""
        while True:
            with self._cond:
                while (not self._queue and not stop.is_set() and not self._speculation_due()
                       and not self._partial_due()):
                    self._cond.wait(0.1)
                item = self._queue.popleft() if self._queue else None
                if item is None and stop.is_set():
                    return
                if item is not None:
                    self._queued_s -= item.utt.duration
                self._busy = True
            try:
                if item is not None:
                    self._final(item)
                elif self._speculation_due():
                    self._speculate()
                else:
                    self._partial()
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
                self._forget_raw()

    def _partial_due(self) -> bool:
        return (self.on_partial is not None and self._session is not None and self.segmenter.in_speech()
                and time.monotonic() >= self._next_partial)

    def _speculation_due(self) -> bool:
        if not self._speculative or self._session is None or not self.segmenter.in_speech():
            return False
        with self._vad_lock:
            # The VAD waits min_silence_ms before it closes an utterance; the decoder starts once
            # the utterance's trailing padding is in, so it sees exactly the audio the final holds.
            slack_s = self.segmenter.end_slack_samples() / RATE
            if self.segmenter.trailing_silence_s() < max(slack_s, 0.05):
                return False
            key = (self.segmenter.pending_start(), self.segmenter.speech_end_samples())
        spec = self._spec
        return key[0] is not None and (spec is None or (spec.start, spec.speech_end) != key)

    def _speculate(self) -> None:
        with self._vad_lock:
            start, audio = self.segmenter.pending_start(), self.segmenter.pending_audio()
            speech_end, slack = self.segmenter.speech_end_samples(), self.segmenter.end_slack_samples()
        if start is None:
            return
        heard = audio[: speech_end + slack]
        try:  # the audio the final will most likely hold: speech plus its trailing padding
            heard = self._beam(start, heard)
            stream = self.engine.new_stream(start)
            stream.accept(heard)
            result: Recognition | None = stream.finish()
        except Exception as exc:
            log.warning("early decoding failed (decoding again at the end): %s", exc)
            result = None
        self._spec = _Speculation(start, speech_end, result, heard)

    def _speculated(self, utt: Utterance) -> _Speculation | None:
        """The early decode, if the utterance ended without speech after it."""
        spec, self._spec = self._spec, None
        if spec is None or spec.result is None or utt.split or abs(spec.start - utt.start) > 1e-9:
            return None
        if utt.audio.size > spec.speech_end + self.segmenter.end_slack_samples():
            return None  # speech resumed after the early decode
        self.stats.early_finals += 1
        return spec

    def _partial(self) -> None:
        began = time.monotonic()
        try:
            self._partial_once()
        finally:
            # At most half the worker's time goes to partials, so a long utterance (whose
            # partial re-encodes everything so far) cannot hold up the final texts.
            cost = time.monotonic() - began
            self._next_partial = began + max(self.partial_interval_s, 2 * cost)

    def _partial_once(self) -> None:
        session = self._session
        with self._vad_lock:
            audio, start = self.segmenter.pending_audio(), self.segmenter.pending_start()
        if session is None or start is None or audio.size < RATE // 4:
            return
        stream = self._stream_for(start, audio)
        self._partial_stream = stream
        try:
            if self._queue:  # a final arrived meanwhile: it goes first
                return
            text = stream.partial().strip()
        except Cancelled:
            return
        except Exception as exc:  # a partial is a nicety: log, never fail the visit
            log.warning("partial hypothesis failed: %s", exc)
            return
        finally:
            self._partial_stream = None
        if text and self.on_partial is not None:
            self.stats.partials += 1
            self.on_partial(PartialText(session, round(start, 3), text))

    def _stream_for(self, start: float, audio: np.ndarray, *, exact: bool = False) -> RecognizerStream:
        """The in-flight stream, fed up to ``audio``; a new one when the utterance changed.

        A stream fed past the end of ``audio`` holds only trailing silence beyond it, which
        is harmless, unless ``exact`` (a split utterance: the excess is the next piece).
        """
        overfed = self._stream_fed > audio.size
        if self._stream is None or self._stream_start != start or (overfed and exact):
            self._stream, self._stream_start, self._stream_fed = self.engine.new_stream(start), start, 0
        self._stream.accept(audio[self._stream_fed:])
        self._stream_fed = max(self._stream_fed, audio.size)
        return self._stream

    def _note_final(self, utt: Utterance, result: Recognition) -> None:
        self.stats.asr_events.update(result.events)
        self.engine.note_final(utt.start, utt.end, result)

    def _final(self, item: _Queued) -> None:
        utt = item.utt
        label = self._label_async(utt)
        try:
            early = self._speculated(utt)
            stream: RecognizerStream | None = None
            heard = utt.audio if early is None else early.audio
            if early is None and self.frontend is not None:  # a stream of its own: partials heard the mix
                heard = self._beam(utt.start, utt.audio)
                stream = self.engine.new_stream(utt.start)
                stream.accept(heard)
            elif early is None:
                stream = self._stream_for(utt.start, utt.audio, exact=utt.split)
            self._stream = None  # the next utterance gets a fresh stream
            result: Recognition | None = early.result if early is not None else stream.finish() if stream else None
        except Exception as exc:  # one bad utterance must not take the visit with it
            self.stats.failed += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("recognition failed for %.1f s utterance at %.1f s", utt.duration, utt.start)
            self._stream, result = None, None
        speaker, turns, parts = label.result()
        if result is not None:
            self._note_final(utt, result)
        if result is not None and result.no_speech:
            self.stats.no_speech += 1
            return  # no invented text from noise
        if len(parts) > 1 and result is not None:  # the speaker changed inside the utterance
            self._final_parts(item, parts)
            return
        unsure = any(p.uncertain for p in parts)
        if not self._deliver(self._segment(item.session, utt.start, utt.end, result, speaker, turns, unsure,
                                           heard)):
            return
        self.stats.latencies.append(item.detect_delay + time.monotonic() - item.emitted_at)

    def _beam(self, start: float, mono: np.ndarray) -> np.ndarray:
        """The front end's audio for the ``mono`` mix starting at ``start``, else the mix itself."""
        if self.frontend is None or mono.size == 0:
            return mono
        end = start + mono.size / RATE
        direction = None
        try:  # the tracker's estimate; without one the front end finds the direction itself
            direction = self.tracker.direction(start, end) if self.tracker is not None else None
        except Exception as exc:
            log.warning("no direction for the front end at %.1f s: %s", start, exc)
        try:
            beam = self.frontend.enhance(start, end, direction)
        except Exception as exc:  # the mix is still a transcript
            log.warning("front end failed for the utterance at %.1f s: %s", start, exc)
            return mono
        return mono if beam is None else beam

    def _segment(self, session: str, start: float, end: float, result: Recognition | None, speaker: str,
                 turns: tuple[int, ...], uncertain: bool, heard: np.ndarray) -> FinalSegment:
        text = "" if result is None else result.text.strip()  # failed: keep the timing, flag no text
        confidence = None if result is None or result.avg_logprob is None else _confidence(result.avg_logprob)
        per_word = None if result is None else result.word_confidence
        if per_word is not None and len(per_word) != len(text.split()):
            per_word = None  # they must name the words of the stored text, or nothing
        return FinalSegment(session, round(start, 3), round(end, 3), text, speaker, turns, confidence, per_word,
                            uncertain, heard if self.keep_audio else None)

    def _final_parts(self, item: _Queued, parts: list[_Part]) -> None:
        """One stored segment per speaker's part, each part decoded again on its own: the
        recogniser gives no word times to cut the utterance's text at (a part is seconds
        long, so this costs about one more decode of the utterance, only when it was split)."""
        utt = item.utt
        scale = utt.audio.size / RATE / utt.duration if utt.duration > 0 else 1.0  # timeline s → audio s
        delivered = False
        for part in parts:
            lo = max(0, int((part.start - utt.start) * scale * RATE))
            hi = min(utt.audio.size, int((part.end - utt.start) * scale * RATE))
            heard = utt.audio[lo:hi]
            try:
                heard = self._beam(utt.start + lo / RATE, heard)
                result: Recognition | None = transcribe_with(self.engine, heard)
            except Exception as exc:
                self.stats.failed += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("recognition failed for the part at %.1f s", part.start)
                result = None
            if result is not None and (result.no_speech or not result.text.strip()):
                continue  # a part without words (a breath) leaves no line
            seg = self._segment(item.session, part.start, part.end, result, part.label, part.turns, part.uncertain,
                                heard)
            delivered = self._deliver(seg) or delivered
        if delivered:
            self.stats.latencies.append(item.detect_delay + time.monotonic() - item.emitted_at)

    def _label_async(self, utt: Utterance) -> Future[tuple[str, tuple[int, ...], list[_Part]]]:
        if self.diarizer is None:
            done: Future[tuple[str, tuple[int, ...], list[_Part]]] = Future()
            done.set_result(("", (), []))
            return done
        if self._labeller is None:
            self._labeller = ThreadPoolExecutor(max_workers=1, thread_name_prefix="diarize")
        return self._labeller.submit(self._label, utt)

    def _label(self, utt: Utterance) -> tuple[str, tuple[int, ...], list[_Part]]:
        """Who spoke: the label of the longest turn, the turn numbers, and the speakers' parts."""
        if self.diarizer is None:
            return "", (), []
        try:
            direction = self.tracker.direction if self.tracker is not None else None
            turns = self.diarizer.assign(utt.audio, utt.start, utt.end, direction)
        except Exception as exc:  # a label is worth less than the text: keep the segment
            log.warning("diarization failed for the utterance at %.1f s: %s", utt.start, exc)
            return "", (), []
        if not turns:
            return "", (), []
        longest = max(turns, key=lambda t: t.end - t.start)
        return longest.label, tuple(t.index for t in turns), _parts(turns)

    def _deliver(self, seg: FinalSegment) -> bool:
        # A store hiccup (database briefly locked by a reader) must not lose the segment.
        for attempt in range(STORE_ATTEMPTS):
            try:
                self.on_segment(seg)
                return True
            except Exception as exc:
                self.stats.last_error = f"storing segment: {type(exc).__name__}: {exc}"
                log.exception("storing segment at %.1f s failed (attempt %d)", seg.start, attempt + 1)
                time.sleep(STORE_RETRY_S * (attempt + 1))
        self.stats.failed += 1
        return False

    def drain(self, timeout: float) -> bool:
        """Wait until every queued utterance is stored; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def queued_seconds(self) -> float:
        """Speech the VAD has closed that waits for recognition."""
        return self._queued_s

    def pending_seconds(self) -> float:
        return self._queued_s + (self.segmenter.pending_audio().size / RATE)
