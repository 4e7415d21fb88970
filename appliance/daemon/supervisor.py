"""Supervised components: each runs in its own thread and is restarted with backoff.

One failing component (the panel, sync, recognition) must never take the recording down
with it; its failure is logged, shown in the status, and it is restarted after a delay
that doubles on each consecutive failure up to a ceiling.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

STABLE_AFTER_S = 30.0  # a run this long resets the backoff


@dataclass
class ComponentState:
    name: str
    running: bool = False
    restarts: int = 0
    last_error: str = ""
    next_start_at: float = 0.0
    healthy: bool = True


@dataclass
class Component:
    name: str
    run: Callable[[threading.Event], None]  # blocks until the event is set
    state: ComponentState = field(init=False)

    def __post_init__(self) -> None:
        self.state = ComponentState(self.name)


class Supervisor:
    def __init__(
        self, initial_backoff: float, max_backoff: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.clock = clock
        self.stop_event = threading.Event()
        self._components: list[Component] = []
        self._threads: list[threading.Thread] = []

    def add(self, name: str, run: Callable[[threading.Event], None]) -> Component:
        comp = Component(name, run)
        self._components.append(comp)
        return comp

    def start(self) -> None:
        for comp in self._components:
            t = threading.Thread(target=self._keep_running, args=(comp,), name=comp.name, daemon=True)
            t.start()
            self._threads.append(t)

    def _keep_running(self, comp: Component) -> None:
        backoff = self.initial_backoff
        while not self.stop_event.is_set():
            started = self.clock()
            comp.state.running, comp.state.healthy = True, True
            try:
                comp.run(self.stop_event)
                if self.stop_event.is_set():
                    break
                raise RuntimeError("returned without being asked to stop")
            except Exception as exc:
                comp.state.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("component %s failed", comp.name, extra={"component": comp.name})
            finally:
                comp.state.running = False
            if self.clock() - started >= STABLE_AFTER_S:
                backoff = self.initial_backoff
            comp.state.restarts += 1
            comp.state.healthy = False
            comp.state.next_start_at = self.clock() + backoff
            log.warning("restarting %s in %.1f s (restart %d)", comp.name, backoff, comp.state.restarts)
            if self.stop_event.wait(backoff):
                break
            backoff = min(backoff * 2, self.max_backoff)

    def states(self) -> list[ComponentState]:
        return [c.state for c in self._components]

    def unhealthy(self) -> list[str]:
        return [c.name for c in self._components if not c.state.healthy]

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
