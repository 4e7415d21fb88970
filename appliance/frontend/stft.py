"""Short-time Fourier transform of multichannel audio and its weighted overlap-add inverse.

Both stages of the front end (WPE, MVDR) work per frequency bin on the same STFT, so one
analysis and one synthesis serve the whole chain. The synthesis is normalised by the
summed window product, so any hop up to half the frame reconstructs the input exactly.
"""

from __future__ import annotations

import numpy as np


def _window(n_fft: int) -> np.ndarray:
    return np.sqrt(np.hanning(n_fft + 1)[:-1]).astype(np.float32)  # periodic sqrt-Hann


def stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(samples, channels) real → (bins, channels, frames) complex64.

    ``n_fft - hop`` zeros go before the signal, so its first sample lies in every frame that
    istft needs to rebuild it; frames run until the last sample is covered.
    """
    x = np.asarray(x, np.float32)
    pad = n_fft - hop
    frames = max(1, -(-(len(x) + pad) // hop))
    padded = np.zeros((frames * hop + pad, x.shape[1]), np.float32)
    padded[pad:pad + len(x)] = x
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]  # (frames, n_fft)
    spec = np.fft.rfft(padded[idx] * _window(n_fft)[None, :, None], axis=1)  # (frames, bins, channels)
    return np.ascontiguousarray(spec.transpose(1, 2, 0)).astype(np.complex64)


def istft(spec: np.ndarray, n_fft: int, hop: int, length: int) -> np.ndarray:
    """(bins, frames) complex → ``length`` real samples (float32), the inverse of stft for one channel."""
    window = _window(n_fft)
    frames = np.fft.irfft(spec.T, n=n_fft, axis=1).astype(np.float32) * window[None, :]  # (frames, n_fft)
    total = (spec.shape[1] - 1) * hop + n_fft
    out = np.zeros(total, np.float32)
    norm = np.zeros(total, np.float32)
    for t in range(spec.shape[1]):
        out[t * hop:t * hop + n_fft] += frames[t]
        norm[t * hop:t * hop + n_fft] += window ** 2
    pad = n_fft - hop
    out = out[pad:pad + length] / np.maximum(norm[pad:pad + length], 1e-6)
    return np.pad(out, (0, length - len(out))) if len(out) < length else out
