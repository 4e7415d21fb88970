"""The refined pass: the visit decoded again, behind the live text, in windows of joined speech.

The live pass decodes each utterance alone as soon as it ends (latency). Whisper does better with
context: utterances joined into ~30 s windows and decoded together (with the previous window's
text as the prompt) lose fewer words. This runs on a thread of its own, at a lower CPU priority
than the live pass, while the visit goes on, so at Stop only the last window is left.

- The audio of each stored utterance (what the live pass heard, the array's beam included) waits
  in RAM only, bounded by `asr.refine_buffer_s`; when the pass falls further behind, the oldest
  utterances are let go and keep their live text. All of it is gone once the visit's last window
  is decoded, or at once when the daemon stops.
- A window's text goes back to the lines it was decoded from (speech/align.py), so every line keeps
  its speaker; a window the decoder judged silent or hallucinated keeps the live text, and so does
  a window with fewer than 70 % of its live words, or with one line that has (the refined pass is
  there to recover words, not to drop them, nor to say them twice); a line is never emptied.
- At the end the caller gets {line: refined text} for the lines whose words changed, with the
  live texts they replace; the controller stores them as one new revision (store/revise.py), which
  Undo on Review takes back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from appliance.asr.engine import Engine
from appliance.config.schema import AsrConfig
from appliance.speech.align import share_words
from appliance.speech.worker import worker_thread

log = logging.getLogger(__name__)

RATE = 16000
GAP_S = 0.3  # silence put between joined utterances (a pause Whisper can place a timestamp in)
MIN_KEPT_WORDS = 0.7  # a refined window or line with fewer words than this share of the live ones is not used
NICE = 10  # the refined pass yields the CPU to the live one

Refined = Callable[[str, dict[str, str], dict[str, str]], None]  # (session, {line: new text}, {line: live text})


@dataclass
class _Heard:
    line: str  # the stored segment's id
    start: float
    end: float
    text: str  # its live text
    audio: np.ndarray

    @property
    def seconds(self) -> float:
        return self.audio.size / RATE


@dataclass
class _Visit:
    session_id: str
    waiting: deque[_Heard] = field(default_factory=deque)
    texts: dict[str, str] = field(default_factory=dict)  # refined so far
    live: dict[str, str] = field(default_factory=dict)  # the live texts those replace
    ended: bool = False
    deadline: float = 0.0  # once ended: the monotonic time after which the rest keeps its live text
    let_go: int = 0  # utterances that kept their live text because the pass fell behind

    def waiting_s(self) -> float:
        return sum(h.seconds for h in self.waiting)


class Refiner:
    def __init__(self, engine: Engine, cfg: AsrConfig, on_refined: Refined) -> None:
        self.engine = engine
        self.cfg = cfg
        self.on_refined = on_refined
        self._cond = threading.Condition()
        self._visits: deque[_Visit] = deque()  # the current visit last; an ended one may still be finishing
        self.windows = 0  # decoded, for the status and the tests
        self.kept_live = 0  # windows whose live text was kept (silent, hallucinated, or words lost)
        self.let_go = 0  # utterances never refined (the pass fell behind, or its deadline passed)
        self._context: str | None = None  # the visit the engine's previous-text prompt belongs to

    # -- from the controller -----------------------------------------------------------------------
    def begin(self, session_id: str) -> None:
        """A new visit; nothing said in the last one prompts it."""
        with self._cond:
            self._visits.append(_Visit(session_id))
            self._cond.notify_all()

    def add(self, line: str, start: float, end: float, text: str, audio: np.ndarray) -> None:
        """A stored utterance and the audio the live pass heard for it."""
        with self._cond:
            visit = self._current()
            if visit is None or visit.ended:
                return
            visit.waiting.append(_Heard(line, start, end, text, np.asarray(audio, np.float32)))
            while visit.waiting_s() > self.cfg.refine_buffer_s and len(visit.waiting) > 1:
                self._let_go(visit, [visit.waiting.popleft()])  # fallen too far behind: the oldest
            self._cond.notify_all()

    def end(self, session_id: str) -> None:
        """Stop: what waits is the visit's last window; the result is handed over when it is done."""
        with self._cond:
            for visit in self._visits:
                if visit.session_id == session_id and not visit.ended:
                    visit.ended = True
                    visit.deadline = time.monotonic() + self.cfg.refine_finish_s
            self._cond.notify_all()

    def status(self) -> dict[str, Any]:
        """For `appliance ctl status`: windows decoded and kept live since start, what waits now."""
        with self._cond:
            return {"windows": self.windows, "kept_live": self.kept_live,
                    "waiting_s": round(sum(v.waiting_s() for v in self._visits), 1), "let_go": self.let_go,
                    "sessions": [v.session_id for v in self._visits]}  # not yet handed over (Review waits)

    def busy_with(self, session_id: str) -> bool:
        """The pass has not yet handed over this visit's result."""
        with self._cond:
            return self._holds(session_id)

    def wait_handed_over(self, session_id: str, timeout: float) -> bool:
        """Block until this visit's result is handed over (its worker must be running); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._holds(session_id), timeout)

    def drop_all(self) -> None:
        """The daemon stops: every buffered second of audio is let go (the live text stands)."""
        with self._cond:
            self._visits.clear()
            self._cond.notify_all()

    # -- the worker --------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        with contextlib.suppress(OSError, AttributeError):  # lower priority for this thread only (Linux)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        while not stop.is_set():
            self.step(wait_s=0.5)

    @contextlib.contextmanager
    def running(self) -> Iterator[Refiner]:
        """The worker on a thread of its own while the block runs (tests, `appliance transcribe`)."""
        with worker_thread(self.run, "refine"):
            yield self

    def step(self, wait_s: float = 0.0) -> bool:
        """One unit of work: a window decoded, or a finished visit handed over; False if none."""
        with self._cond:
            job = self._next_job()
            if job is None and wait_s > 0:
                self._cond.wait(wait_s)
                job = self._next_job()
            if job is None:
                return False
            visit, window = job
        if not window:  # ended and nothing waits: hand the result over (one worker: nobody else takes it)
            self._hand_over(visit)
            with self._cond:
                self._visits.remove(visit)
                self._cond.notify_all()  # wait_handed_over
            return True
        if self._context != visit.session_id:  # nothing said in another visit prompts this one
            self.engine.reset_context()
            self._context = visit.session_id
        texts = self._decode(window)
        with self._cond:
            self.windows += 1
            for h in window:
                if h.line in texts:
                    visit.texts[h.line], visit.live[h.line] = texts[h.line], h.text
        return True

    def _let_go(self, visit: _Visit, heard: Sequence[_Heard]) -> None:
        """These utterances keep their live text (counted for the visit's log line and the status)."""
        visit.let_go += len(heard)
        self.let_go += len(heard)

    def _holds(self, session_id: str) -> bool:
        return any(v.session_id == session_id for v in self._visits)

    def _current(self) -> _Visit | None:
        return self._visits[-1] if self._visits else None

    def _next_job(self) -> tuple[_Visit, list[_Heard]] | None:
        """The oldest visit's next window (all that waits once it has ended); taken off its queue."""
        for visit in self._visits:
            if visit.ended and visit.waiting and time.monotonic() > visit.deadline:
                self._let_go(visit, visit.waiting)
                visit.waiting.clear()
                log.warning("refined pass cut short at its deadline (asr.refine_finish_s): the rest keeps "
                            "its live text", extra={"session_id": visit.session_id})
            if visit.ended and not visit.waiting:
                return visit, []
            if visit.waiting and (visit.ended or visit.waiting_s() >= self.cfg.refine_window_s):
                return visit, self._take_window(visit)
            if not visit.ended:
                return None  # the current visit is still filling its window
        return None

    def _take_window(self, visit: _Visit) -> list[_Heard]:
        window = [visit.waiting.popleft()]
        total = window[0].seconds
        while visit.waiting and total + GAP_S + visit.waiting[0].seconds <= self.cfg.refine_window_s:
            h = visit.waiting.popleft()
            window.append(h)
            total += GAP_S + h.seconds
        return window

    def _decode(self, window: list[_Heard]) -> dict[str, str]:
        """{line: refined text} for the lines of ``window`` whose words changed."""
        gap = np.zeros(int(GAP_S * RATE), np.float32)
        pieces, spans, t = [], [], 0.0
        for h in window:
            pieces += [h.audio, gap]
            spans.append((t, t + h.seconds))
            t += h.seconds + GAP_S
        try:
            stream = self.engine.new_stream(window[0].start)
            stream.accept(np.concatenate(pieces[:-1]))
            result = stream.finish()
            self.engine.note_final(window[0].start, window[-1].end, result)
        except Exception:  # the live text stands
            log.exception("refined pass failed on a %.0f s window", t)
            self.kept_live += 1
            return {}
        live_words = sum(len(h.text.split()) for h in window)
        words = len(result.text.split())
        if result.no_speech or "hallucination" in result.events or words < MIN_KEPT_WORDS * live_words:
            log.info("refined window at %.1f s kept its live text (%d words for %d live)", window[0].start,
                     words, live_words)
            self.kept_live += 1
            return {}
        shares = share_words([h.text for h in window], spans, result.text)
        # Line by line too: a window can skip one sentence and still be long enough overall. Such a
        # window's words were shared out on a guess, and a line kept live while its neighbour took
        # its words would say them twice (seen: 37 % insertions in a room), so the whole window
        # keeps its live text.
        if any(len(s.split()) < MIN_KEPT_WORDS * len(h.text.split()) for h, s in zip(window, shares, strict=True)):
            log.info("refined window at %.1f s kept its live text (a line lost its words)", window[0].start)
            self.kept_live += 1
            return {}
        return {h.line: s for h, s in zip(window, shares, strict=True) if s and s != h.text.strip()}

    def _hand_over(self, visit: _Visit) -> None:
        log.info("refined pass done: %d lines changed, %d utterances kept their live text", len(visit.texts),
                 visit.let_go, extra={"session_id": visit.session_id})
        try:
            self.on_refined(visit.session_id, visit.texts, visit.live)
        except Exception:  # the live text stands
            log.exception("could not keep the refined text", extra={"session_id": visit.session_id})
