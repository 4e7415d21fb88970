"""Direction of arrival of an utterance from a microphone array's raw channels.

SRP-PHAT: for every microphone pair the cross-spectrum of each frame is whitened (PHAT:
only its phase is kept, so loud low vowels do not drown the high bands that carry most
of the timing), summed over the utterance's frames, then steered over an azimuth grid
(far field, sound at 343 m/s): the summed real response over all pairs peaks where the
predicted delays match the measured ones. Steering in the frequency domain evaluates
fractional delays exactly, so a 32 mm array resolves degrees without interpolation.

Azimuth is in degrees counter-clockwise from the array's +x axis, in the frame of
`appliance.hardware.arrays` (the vendors' / ODAS frames). A linear array (ReSpeaker 2-mic
HAT) cannot tell a source from its mirror image across the array axis: the answer is then
folded into the half-plane [axis, axis + 180] and flagged `ambiguous`.

`DirectionTracker` keeps only the whitened pair spectra summed per short chunk (inter-mic
phase differences; no audio can be rebuilt from them) so the capture thread can feed it
and the diarizer can ask for any recent utterance's direction without buffering audio.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

import numpy as np

from appliance.hardware.arrays import MicArray

SPEED_OF_SOUND = 343.0  # m/s, room temperature


@dataclass(frozen=True)
class Direction:
    azimuth_deg: float  # [0, 360); for a linear array folded into [axis, axis + 180]
    confidence: float  # 0..1: how much of the whitened response agrees with the peak
    ambiguous: bool = False  # linear array: the mirror image across its axis fits as well


def _linear_axis(positions: np.ndarray) -> float | None:
    """Angle (deg) of the line through all microphones, or None when they span a plane."""
    centred = positions[:, :2] - positions[:, :2].mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    if len(s) > 1 and s[1] > 1e-3 * s[0]:
        return None
    return math.degrees(math.atan2(vt[0, 1], vt[0, 0])) % 180.0


class DirectionFinder:
    """SRP-PHAT over an azimuth grid for one array at one sample rate."""

    def __init__(self, array: MicArray, rate: int, *, grid_deg: float = 1.0, fmin: float = 200.0,
                 fmax: float = 7000.0, frame_s: float = 0.032, hop_ratio: float = 0.5) -> None:
        self.array, self.rate = array, rate
        pos = np.asarray(array.positions_m, float)
        self.axis = _linear_axis(pos)
        self.n_fft = 1 << max(8, math.ceil(math.log2(frame_s * rate)))
        freqs = np.fft.rfftfreq(self.n_fft, 1 / rate)
        self.bins = np.flatnonzero((freqs >= fmin) & (freqs <= min(fmax, 0.45 * rate)))
        self.pairs = list(combinations(range(len(pos)), 2))
        self.grid = np.arange(0.0, 360.0, grid_deg)
        theta = np.radians(self.grid)
        unit = np.stack([np.cos(theta), np.sin(theta), np.zeros_like(theta)])  # (3, angles)
        # tau_ij(theta) = t_i - t_j = (p_j - p_i) . u / c: mics nearer the source hear it first.
        tau = np.stack([(pos[j] - pos[i]) @ unit for i, j in self.pairs]) / SPEED_OF_SOUND  # (pairs, angles)
        omega = 2 * np.pi * freqs[self.bins]
        self._steer = np.exp(1j * omega[None, :, None] * tau[:, None, :]).astype(np.complex64)  # (p, bins, angles)
        self._window = np.hanning(self.n_fft).astype(np.float32)
        self._hop = max(1, int(self.n_fft * hop_ratio))

    @property
    def hop(self) -> int:
        return self._hop

    def pair_spectra(self, mics: np.ndarray, *, louder_half: bool = True) -> tuple[np.ndarray, float, float]:
        """Whitened cross-spectra of ``mics`` (n, raw mics) summed over frames; frame count; mean energy.

        ``louder_half`` keeps the louder half of the frames: pauses carry only noise and
        reverberant tails, which pull the peak towards the noise or a wall.
        """
        x = np.asarray(mics, np.float32)
        n = 1 + (len(x) - self.n_fft) // self.hop if len(x) >= self.n_fft else 0
        if n <= 0:
            return np.zeros((len(self.pairs), len(self.bins)), np.complex64), 0.0, 0.0
        idx = np.arange(self.n_fft)[None, :] + self.hop * np.arange(n)[:, None]
        spec = np.fft.rfft(x[idx] * self._window[None, :, None], axis=1)[:, self.bins, :]  # (frames, bins, mics)
        energy = np.sum(spec.real ** 2 + spec.imag ** 2, axis=(1, 2))
        keep = energy >= max(np.median(energy), 1e-12) if louder_half else energy > 1e-12
        # PHAT: cross / |cross| equals the product of the channels' unit phasors, so whiten
        # each channel once and sum the outer products over frames.
        unit = spec[keep] / (np.abs(spec[keep]) + 1e-12)
        per_bin = np.ascontiguousarray(unit.transpose(1, 2, 0))  # (bins, mics, frames)
        cov = per_bin @ np.conj(per_bin).transpose(0, 2, 1)  # batched BLAS: ~7x a complex einsum
        out = np.stack([cov[:, i, j] for i, j in self.pairs]).astype(np.complex64)
        return out, float(keep.sum()), float(energy.mean())

    def response(self, spectra: np.ndarray, frames: float) -> np.ndarray:
        """Steered response over ``self.grid``, normalised so perfect agreement is 1."""
        power = np.einsum("pb,pba->a", spectra, self._steer).real
        return power / max(frames * len(self.pairs) * len(self.bins), 1e-12)

    def from_spectra(self, spectra: np.ndarray, frames: float) -> Direction | None:
        if frames < 2:
            return None
        power = self.response(spectra, frames)
        if self.axis is not None:  # the mirror half is identical: search one half-plane
            power = np.where((self.grid - self.axis) % 360.0 <= 180.0, power, -np.inf)
        best = int(np.argmax(power))
        finite = power[np.isfinite(power)]
        floor = float(np.median(finite))
        # Confidence: how far the peak stands above the best rival peak (another talker, a
        # reflection, diffuse noise) more than 25 degrees away, relative to the median level.
        apart = np.abs((self.grid - self.grid[best] + 180.0) % 360.0 - 180.0) > 25.0
        local_max = (power >= np.roll(power, 1)) & (power >= np.roll(power, -1)) & np.isfinite(power)
        rival = float(np.max(power[apart & local_max], initial=floor))
        peak = float(power[best])
        confidence = float(np.clip(1.0 - max(rival - floor, 0.0) / max(peak - floor, 1e-9), 0.0, 1.0))
        return Direction(round(float(self.grid[best]) % 360.0, 1), round(confidence, 3), self.axis is not None)

    def estimate(self, raw: np.ndarray) -> Direction | None:
        """Direction of the speech in ``raw`` (samples x channels at ``rate``); None if too short."""
        raw = np.asarray(raw)
        mics = self.array.channel_map(raw.shape[1]) if raw.ndim == 2 else None
        if mics is None:
            return None
        spectra, frames, _ = self.pair_spectra(raw[:, list(mics)])
        return self.from_spectra(spectra, frames)


@lru_cache(maxsize=4)
def finder_for(array: MicArray, rate: int) -> DirectionFinder:
    """A shared finder per (array, rate): building the steering table takes ~0.1 s."""
    return DirectionFinder(array, rate)


def estimate_direction(raw: np.ndarray, rate: int, array: MicArray | None) -> Direction | None:
    """Direction of ``raw`` (samples x device channels); None for mono input or an unknown array."""
    if array is None or np.asarray(raw).ndim != 2 or np.asarray(raw).shape[1] < 2:
        return None
    return finder_for(array, rate).estimate(raw)


class DirectionTracker:
    """Feed raw capture blocks; ask for the direction of any span of the last ``keep_s`` seconds.

    Stores per ``chunk_s`` only the summed whitened pair spectra (a few kB), never samples.
    Times are the capture timeline's seconds (`CapturedBlock.t`).
    """

    def __init__(self, array: MicArray, rate: int, *, keep_s: float = 60.0, chunk_s: float = 0.25) -> None:
        # Frames edge to edge: a live tracker sums hundreds of frames per utterance, so the
        # half-overlapped frames of a one-off estimate would double its cost for nothing.
        self.finder = DirectionFinder(array, rate, hop_ratio=1.0)
        self.chunk = max(self.finder.n_fft, int(chunk_s * rate) // self.finder.hop * self.finder.hop)
        self._pending = np.zeros((0, len(array.positions_m)), np.float32)  # < one chunk of samples
        self._pending_t = 0.0
        self._chunks: deque[tuple[float, float, np.ndarray, float, float]] = deque(maxlen=int(keep_s / chunk_s) + 1)

    def feed(self, raw: np.ndarray, t: float) -> None:
        """``raw`` (n, device channels) at the array's rate, starting at ``t`` seconds."""
        raw = np.asarray(raw, np.float32)
        mics = self.finder.array.channel_map(raw.shape[1]) if raw.ndim == 2 else None
        if mics is None:
            return
        expected = self._pending_t + len(self._pending) / self.finder.rate
        if not len(self._pending) or abs(t - expected) > 0.05:  # first block, or a pause/resume jump
            self._pending, self._pending_t = self._pending[:0], t
        self._pending = np.concatenate([self._pending, raw[:, list(mics)]])
        overlap = self.finder.n_fft - self.finder.hop  # so no frame is lost at a chunk boundary
        while len(self._pending) >= self.chunk:
            spectra, frames, energy = self.finder.pair_spectra(self._pending[:self.chunk], louder_half=False)
            t0 = self._pending_t
            self._chunks.append((t0, t0 + self.chunk / self.finder.rate, spectra, frames, energy))
            self._pending = self._pending[self.chunk - overlap:]
            self._pending_t = t0 + (self.chunk - overlap) / self.finder.rate

    def direction(self, start: float, end: float) -> Direction | None:
        """Direction of the speech between ``start`` and ``end`` (chunks at least half inside)."""
        picked = [c for c in self._chunks if min(c[1], end) - max(c[0], start) >= (c[1] - c[0]) / 2]
        if not picked:
            return None
        loud = np.median([c[4] for c in picked])  # the louder half, as for a whole utterance
        picked = [c for c in picked if c[4] >= loud]
        return self.finder.from_spectra(np.sum([c[2] for c in picked], axis=0), sum(c[3] for c in picked))

    def reset(self) -> None:
        self._pending = self._pending[:0]
        self._chunks.clear()
