"""Talkers in a simulated reverberant room around a ReSpeaker 4-mic array.

pyroomacoustics image sources (the `dev` extra), the array's real microphone positions on a
desk near the middle of a 3.6 x 4 x 2.7 m room; each source's image at the microphones is
returned apart, so a test can measure what a linear beam does to each.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import fftconvolve

from appliance.hardware.arrays import RESPEAKER_USB_4MIC_V2
from tests.speech import RATE

ROOM = np.array([3.6, 4.0, 2.7])
CENTRE = np.array([1.6, 2.0, 0.9])


def room_images(sources: list[tuple[np.ndarray, float, float]], rt60: float) -> list[np.ndarray]:
    """Per (dry audio, azimuth deg, distance m): what the four microphones hear of it, (n, 4)."""
    pra = pytest.importorskip("pyroomacoustics")
    absorption, max_order = pra.inverse_sabine(rt60, ROOM)
    room = pra.ShoeBox(ROOM, fs=RATE, materials=pra.Material(absorption), max_order=max_order)
    room.add_microphone_array(np.asarray(RESPEAKER_USB_4MIC_V2.positions_m).T + CENTRE[:, None])
    for _, az, dist in sources:
        a = np.radians(az)
        room.add_source([*(CENTRE[:2] + dist * np.array([np.cos(a), np.sin(a)])), 1.2])
    room.compute_rir()
    n = max(s[0].size for s in sources)
    out = []
    for k, (audio, _, _) in enumerate(sources):
        mics = np.zeros((n, 4))
        for m in range(4):
            wet = fftconvolve(audio, room.rir[m][k])[:n]
            mics[:wet.size, m] = wet
        out.append(mics.astype(np.float32))
    return out


def snr_db(signal: np.ndarray, noise: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(signal.astype(np.float64) ** 2) / np.sum(noise.astype(np.float64) ** 2)))
