"""A supervised component's loop on a thread of its own, outside the daemon (`appliance transcribe`,
the benchmarks, tests); the daemon's supervisor runs the same loops itself."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def worker_thread(run: Callable[[threading.Event], None], name: str, join_s: float = 10.0) -> Iterator[None]:
    """``run(stop)`` on a named daemon thread while the block runs; stopped and joined after it."""
    stop = threading.Event()
    worker = threading.Thread(target=run, args=(stop,), name=name, daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join(join_s)
