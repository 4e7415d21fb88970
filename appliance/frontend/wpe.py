"""Weighted prediction error (WPE) dereverberation, per frequency bin (Nakatani et al., 2010).

Late reverberation at frame t is predicted from the observations ``delay`` to ``delay +
taps - 1`` frames earlier and subtracted; the direct sound and early reflections (inside the
delay) are kept, and they carry what a recogniser needs. The prediction filter solves a least
squares problem weighted by the inverse power of the current estimate (speech is sparse in
time-frequency), so a few iterations refine it. As in the `nara-wpe` reference implementation
(Drude et al., 2018), the power is the mean over channels and the filter is multichannel:
every channel is predicted from all channels' past.
"""

from __future__ import annotations

import numpy as np

BINS_PER_BLOCK = 32  # bins solved together: bounds the stacked past (bins x mics*taps x frames) in RAM


def _stack_past(obs: np.ndarray, taps: int, delay: int) -> np.ndarray:
    """(bins, mics, frames) → (bins, mics*taps, frames): frame t holds frames t-delay … t-delay-taps+1."""
    bins, mics, frames = obs.shape
    past = np.zeros((bins, mics * taps, frames), obs.dtype)
    for k in range(taps):
        shift = delay + k
        if shift < frames:
            past[:, k * mics:(k + 1) * mics, shift:] = obs[:, :, :frames - shift]
    return past


def _wpe_block(obs: np.ndarray, taps: int, delay: int, iterations: int, floor: float) -> np.ndarray:
    past = _stack_past(obs, taps, delay)
    past_h = np.conj(past).transpose(0, 2, 1)
    eye = np.eye(past.shape[1], dtype=obs.dtype)
    est = obs
    for _ in range(iterations):
        power = np.mean(est.real ** 2 + est.imag ** 2, axis=1)  # (bins, frames)
        power = np.maximum(power, floor * np.max(power, axis=1, keepdims=True) + 1e-10)
        weighted = past / power[:, None, :]
        corr = weighted @ past_h  # (bins, mics*taps, mics*taps)
        cross = weighted @ np.conj(obs).transpose(0, 2, 1)  # (bins, mics*taps, mics)
        # a touch of loading: short utterances give fewer frames than unknowns in the quiet bins
        load = 1e-6 * np.trace(corr, axis1=1, axis2=2).real[:, None, None] / corr.shape[1] + 1e-12
        filt = np.linalg.solve(corr + load * eye, cross)
        est = obs - np.conj(filt).transpose(0, 2, 1) @ past
    return est


def wpe(obs: np.ndarray, *, taps: int = 10, delay: int = 3, iterations: int = 2, floor: float = 1e-4) -> np.ndarray:
    """Dereverberate an STFT (bins, mics, frames); returns the same shape.

    ``floor`` bounds the weights (relative to a bin's loudest frame), so near-silent frames
    do not dominate the least-squares fit.
    """
    obs = np.asarray(obs, np.complex64)
    if obs.shape[2] <= delay + 1:
        return obs.copy()
    out = np.empty_like(obs)
    for lo in range(0, obs.shape[0], BINS_PER_BLOCK):
        out[lo:lo + BINS_PER_BLOCK] = _wpe_block(obs[lo:lo + BINS_PER_BLOCK], taps, delay, iterations, floor)
    return out
