"""Server-Sent Events: controller events pushed to the browsers, plus a status tick each second.

The controller calls EventHub.publish from its own threads; each open page has a small
queue. A page that stops reading (queue full) is dropped and reconnects by itself. Text
(segments, partials) is only sent to a page that presented the pass of an audited load of
the visit in progress (appliance/panel/lock.py); the patient's name is never sent.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)

TEXT_KINDS = ("segment", "partial")
NAME_KEYS = ("name",)  # the patient's name or initials: shown only on audited pages


def without_names(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in NAME_KEYS}
QUEUE_MAX = 256


class Subscriber:
    def __init__(self, text_for: str | None) -> None:
        self.text_for = text_for  # session id whose text this page may receive
        self.q: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue(QUEUE_MAX)
        self.dropped = False


class EventHub:
    def __init__(self) -> None:
        self._subs: list[Subscriber] = []
        self._lock = threading.Lock()
        self.closed = threading.Event()

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        """Controller listener; must never block a recording."""
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            if kind in TEXT_KINDS and data.get("session_id") != sub.text_for:
                data_out: dict[str, Any] = {"session_id": data.get("session_id")}  # that something happened
            else:
                data_out = without_names(data)
            try:
                sub.q.put_nowait((kind, data_out))
            except queue.Full:
                sub.dropped = True

    def subscribe(self, text_for: str | None) -> Subscriber:
        sub = Subscriber(text_for)
        with self._lock:
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subs)

    def stream(self, sub: Subscriber, status: Callable[[], dict[str, Any]], tick_s: float = 1.0) -> Iterator[str]:
        """The text/event-stream body: events as they come, a 'status' event every tick_s."""
        try:
            yield "retry: 1500\n\n"
            yield _frame("status", status())
            while not self.closed.is_set() and not sub.dropped:
                try:
                    kind, data = sub.q.get(timeout=tick_s)
                    yield _frame(kind, data)
                    # a burst of events must not starve the tick (levels, elapsed time)
                    while True:
                        kind, data = sub.q.get_nowait()
                        yield _frame(kind, data)
                except queue.Empty:
                    pass
                yield _frame("status", status())
        finally:
            self.unsubscribe(sub)

    def close(self) -> None:
        self.closed.set()


def _frame(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
