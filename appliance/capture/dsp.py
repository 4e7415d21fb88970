"""Signal processing for capture: channel mix-down, streaming resampling to 16 kHz, levels.

The resampler is a polyphase FIR with the same design as ``scipy.signal.resample_poly``
(windowed sinc, Kaiser beta 5, 10 zero crossings per side), run block by block with its
input history carried over, so feeding a signal in any block sizes gives the same samples
as resampling the whole signal at once. The filter is built with numpy alone: importing
scipy.signal costs ~1.6 s of start-up on this class of hardware.
"""

from __future__ import annotations

from math import gcd

import numpy as np

ASR_RATE = 16000
FLOOR_DBFS = -120.0  # reported for digital silence instead of -inf (JSON-safe, below any mic noise)
_FLOOR_AMPLITUDE = 10.0 ** (FLOOR_DBFS / 20.0)


def mix_down(raw: np.ndarray, channels: tuple[int, ...] = ()) -> np.ndarray:
    """Mean of the selected channels (all when empty) of a (frames, channels) block.

    A mean, not a sum, so the mix stays within [-1, 1] whatever the channel count.
    """
    picked = raw if not channels else raw[:, list(channels)]
    if picked.shape[1] == 1:
        return picked[:, 0].astype(np.float32, copy=True)
    return picked.mean(axis=1, dtype=np.float64).astype(np.float32)


def to_dbfs(amplitude: np.ndarray | float) -> np.ndarray:
    """Amplitude relative to full scale (1.0) in dB, floored at FLOOR_DBFS."""
    return 20.0 * np.log10(np.maximum(np.asarray(amplitude, dtype=np.float64), _FLOOR_AMPLITUDE))


def rms_dbfs(block: np.ndarray) -> np.ndarray:
    """Per-channel RMS of a (frames, channels) block in dBFS (a full-scale sine reads -3 dBFS)."""
    if len(block) == 0:
        return np.full(block.shape[1], FLOOR_DBFS)
    return to_dbfs(np.sqrt(np.mean(np.square(block, dtype=np.float64), axis=0)))


def peak_dbfs(block: np.ndarray) -> np.ndarray:
    """Per-channel sample peak of a (frames, channels) block in dBFS."""
    if len(block) == 0:
        return np.full(block.shape[1], FLOOR_DBFS)
    return to_dbfs(np.max(np.abs(block), axis=0))


def lowpass(numtaps: int, cutoff: float, beta: float = 5.0) -> np.ndarray:
    """Kaiser-windowed sinc low-pass; cutoff relative to Nyquist; unit gain at DC."""
    n = np.arange(numtaps) - (numtaps - 1) / 2.0
    h = cutoff * np.sinc(cutoff * n) * np.kaiser(numtaps, beta)
    return h / h.sum()


class StreamResampler:
    """Stateful rational-ratio resampler for one mono stream (default: to 16 kHz).

    ``process`` returns every output sample whose filter window is covered by the input so
    far (the filter is centred, so the output lags the input by half a filter, well under
    2 ms); ``flush`` ends the stream with implicit trailing zeros, exactly like resampling
    the whole signal, and leaves the resampler ready for a new stream.
    """

    def __init__(self, rate_in: int, rate_out: int = ASR_RATE) -> None:
        if rate_in <= 0 or rate_out <= 0:
            raise ValueError(f"sample rates must be positive (got {rate_in} -> {rate_out})")
        self.rate_in, self.rate_out = rate_in, rate_out
        g = gcd(rate_in, rate_out)
        self._up, self._down = rate_out // g, rate_in // g
        self._passthrough = self._up == self._down == 1
        max_rate = max(self._up, self._down)
        half_len = 0 if self._passthrough else 10 * max_rate
        h = np.ones(1) if self._passthrough else lowpass(2 * half_len + 1, 1.0 / max_rate) * self._up
        self._delay = half_len  # centre of the filter, in upsampled samples
        # Polyphase split: row φ holds the taps that meet real input samples when the
        # output lands on phase φ of the upsampled grid.
        self._taps = -(-len(h) // self._up)
        self._poly = np.zeros((self._up, self._taps))
        for phase in range(self._up):
            sub = h[phase :: self._up]
            self._poly[phase, : len(sub)] = sub
        self._reversed_tap_index = np.arange(self._taps)
        self.reset()

    def reset(self) -> None:
        self._hist = np.zeros(self._taps - 1)  # zeros before the start, as whole-signal padding
        self._hist_start = -(self._taps - 1)  # absolute input index of _hist[0]
        self._n_in = 0  # real input samples received
        self._k = 0  # next output index

    @property
    def latency_samples(self) -> float:
        """Input samples the output lags behind the input (half the filter)."""
        return self._delay / self._up

    def process(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if self._passthrough:
            self._n_in += len(x)
            return x.astype(np.float32)
        self._n_in += len(x)
        return self._run(x, None)

    def flush(self) -> np.ndarray:
        """The tail of the stream (trailing zeros implied), then reset for a new stream."""
        if self._passthrough:
            self.reset()
            return np.zeros(0, dtype=np.float32)
        n_out = -(-self._n_in * self._up // self._down)  # ceil, as whole-signal resampling
        if n_out <= self._k:
            self.reset()
            return np.zeros(0, dtype=np.float32)
        last_needed = ((n_out - 1) * self._down + self._delay) // self._up
        have = self._hist_start + len(self._hist) - 1
        tail = self._run(np.zeros(max(0, last_needed - have)), n_out)
        self.reset()
        return tail

    def _run(self, x: np.ndarray, k_limit: int | None) -> np.ndarray:
        buf = np.concatenate((self._hist, x))
        last = self._hist_start + len(buf) - 1  # absolute index of the newest sample
        up, down = self._up, self._down
        # Output k needs input up to b_k = (k*down + delay) // up; take all k with b_k <= last.
        k_end = max(self._k, (last * up + up - 1 - self._delay) // down + 1)
        if k_limit is not None:
            k_end = min(k_end, k_limit)
        ks = np.arange(self._k, k_end, dtype=np.int64)
        pos = ks * down + self._delay
        phase, base = pos % up, pos // up
        idx = (base - self._hist_start)[:, None] - self._reversed_tap_index[None, :]
        y = np.einsum("ij,ij->i", self._poly[phase], buf[idx]) if len(ks) else np.zeros(0)
        self._k = k_end
        # Keep only the history the next output can reach back to.
        next_base = (k_end * down + self._delay) // up
        keep_from = min(max(next_base - (self._taps - 1), self._hist_start), last + 1)
        self._hist = buf[keep_from - self._hist_start :]
        self._hist_start = keep_from
        return y.astype(np.float32)
