"""A bounded ring of the array's microphone channels at 16 kHz, on the capture timeline.

The front end needs an utterance's multichannel audio (and a second of what came before it)
after the VAD has closed the utterance; this ring holds the last ``keep_s`` seconds in RAM and
nothing else ever does. Older audio is overwritten, never written anywhere.
"""

from __future__ import annotations

import threading

import numpy as np

JUMP_S = 0.05  # a block this far from where the last one ended starts a new stretch (pause/resume)


class ChannelRing:
    def __init__(self, channels: int, keep_s: float, rate: int) -> None:
        self.rate = rate
        self._buf = np.zeros((max(1, int(keep_s * rate)), channels), np.float32)
        self._lock = threading.Lock()  # fed by the capture thread, read by the recognition worker
        self._start_t = 0.0  # timeline seconds of the first sample written since the last jump
        self._written = 0  # samples written since then

    @property
    def end_t(self) -> float:
        return self._start_t + self._written / self.rate

    def write(self, samples: np.ndarray, t: float) -> None:
        """``samples`` (n, channels) starting at timeline ``t``."""
        with self._lock:
            if not self._written or abs(t - self.end_t) > JUMP_S:
                self._start_t, self._written = t, 0
            cap = len(self._buf)
            for chunk in (samples[i:i + cap] for i in range(0, len(samples), cap)):
                at = self._written % cap
                first = min(len(chunk), cap - at)
                self._buf[at:at + first] = chunk[:first]
                self._buf[:len(chunk) - first] = chunk[first:]
                self._written += len(chunk)

    def read(self, start: float, end: float) -> tuple[np.ndarray, float] | None:
        """A copy of what the ring holds of [start, end) and the time of its first sample;
        None when nothing of it is held."""
        with self._lock:
            cap = len(self._buf)
            oldest = max(0, self._written - cap)
            lo = max(oldest, round((start - self._start_t) * self.rate))
            hi = min(self._written, round((end - self._start_t) * self.rate))
            if hi <= lo:
                return None
            idx = np.arange(lo, hi) % cap
            return self._buf[idx].copy(), self._start_t + lo / self.rate

    def clear(self) -> None:
        """Forget, and overwrite, everything held."""
        with self._lock:
            self._buf.fill(0.0)
            self._written = 0
