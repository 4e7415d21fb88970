"""A capture sink for tests: keeps every block it is handed, thread-safely."""

from __future__ import annotations

import threading

import numpy as np

from appliance.capture.blocks import CapturedBlock


class Recorder:
    def __init__(self) -> None:
        self.blocks: list[CapturedBlock] = []
        self.lock = threading.Lock()

    def __call__(self, block: CapturedBlock) -> None:
        with self.lock:
            self.blocks.append(block)

    def count(self) -> int:
        with self.lock:
            return len(self.blocks)

    def raw(self, since: int = 0) -> np.ndarray:
        with self.lock:
            return np.concatenate([b.raw for b in self.blocks[since:]])

    def mono(self, since: int = 0) -> np.ndarray:
        with self.lock:
            return np.concatenate([b.mono16k for b in self.blocks[since:]])
