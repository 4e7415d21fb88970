"""MVDR beamforming steered at an azimuth, for a microphone array of known geometry.

Minimum variance distortionless response: per frequency bin the weights pass sound from
the steered direction unchanged and minimise everything else the noise covariance holds,
w = R⁻¹d / (dᴴR⁻¹d). The steering vector d is the far-field plane wave from the azimuth
(in the array's plane, 343 m/s), relative to the array centre. R is diagonally loaded: on a
few-centimetre array an unloaded R asks for huge, opposite-signed weights at low frequencies
(super-directivity), which amplify the microphones' own noise and any steering error.
"""

from __future__ import annotations

import numpy as np

from appliance.diarize.direction import SPEED_OF_SOUND


def steering(positions_m: np.ndarray, azimuth_deg: float, freqs_hz: np.ndarray) -> np.ndarray:
    """(bins, mics) plane-wave response: mic m hears the wave p_m·u / c earlier than the centre."""
    theta = np.radians(azimuth_deg)
    unit = np.array([np.cos(theta), np.sin(theta), 0.0])
    lead_s = np.asarray(positions_m, float) @ unit / SPEED_OF_SOUND  # (mics,)
    return np.exp(2j * np.pi * np.asarray(freqs_hz)[:, None] * lead_s[None, :]).astype(np.complex64)


def covariance(spec: np.ndarray, frames: np.ndarray | None = None) -> np.ndarray:
    """Spatial covariance per bin (bins, mics, mics) of an STFT (bins, mics, frames), over ``frames``."""
    x = spec if frames is None else spec[:, :, frames]
    return (x @ np.conj(x).transpose(0, 2, 1)) / max(x.shape[2], 1)


def weights(cov: np.ndarray, steer: np.ndarray, loading: float) -> np.ndarray:
    """(bins, mics) MVDR weights; ``loading`` adds that fraction of the mean mic power to the diagonal."""
    mics = cov.shape[1]
    power = np.trace(cov, axis1=1, axis2=2).real / mics
    loaded = cov + (loading * power + 1e-12)[:, None, None] * np.eye(mics, dtype=cov.dtype)
    rd = np.linalg.solve(loaded, steer[:, :, None])[:, :, 0]  # R⁻¹d
    gain = np.sum(np.conj(steer) * rd, axis=1).real  # dᴴR⁻¹d, real for Hermitian R
    return (rd / np.maximum(gain, 1e-12)[:, None]).astype(np.complex64)


def apply(w: np.ndarray, spec: np.ndarray) -> np.ndarray:
    """Beam output (bins, frames) = wᴴx per bin and frame."""
    return np.einsum("bm,bmt->bt", np.conj(w), spec)
