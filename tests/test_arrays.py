"""Microphone array geometries and device-name lookup."""

from __future__ import annotations

import math
from itertools import combinations

import pytest

from appliance.hardware.arrays import (
    KNOWN_ARRAYS,
    MINIDSP_UMA8,
    RESPEAKER_2MIC_HAT,
    RESPEAKER_USB_4MIC_V2,
    MicArray,
    array_for_device,
)


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        ("ReSpeaker 4 Mic Array (UAC1.0): USB Audio (hw:1,0)", RESPEAKER_USB_4MIC_V2),
        ("ArrayUAC10", RESPEAKER_USB_4MIC_V2),
        ("seeed-2mic-voicecard: bcm2835-i2s-wm8960-hifi wm8960-hifi-0 (hw:2,0)", RESPEAKER_2MIC_HAT),
        ("plughw:CARD=seeed2micvoicec,DEV=0", RESPEAKER_2MIC_HAT),
        ("micArray RAW SPK: USB Audio (hw:3,0)", MINIDSP_UMA8),
        ("miniDSP UMA8", MINIDSP_UMA8),
        ("UMA-8 v2", MINIDSP_UMA8),
        ("USB PnP Sound Device: Audio (hw:1,0)", None),
        ("wm8960-soundcard", None),  # generic codec name: geometry unknown
        ("seeed-4mic-voicecard", None),
        ("", None),
    ],
)
def test_lookup(device: str, expected: MicArray | None) -> None:
    assert array_for_device(device) is expected


def _pairwise(a: MicArray) -> list[float]:
    return sorted(a.distance_m(i, j) for i, j in combinations(range(len(a.positions_m)), 2))


def test_respeaker_usb_geometry() -> None:
    a = RESPEAKER_USB_4MIC_V2
    assert a.raw_channels == (1, 2, 3, 4) and a.channels == 6
    assert all(math.hypot(x, y) == pytest.approx(0.032) for x, y, _ in a.positions_m)
    d = _pairwise(a)  # a square inscribed in the 32 mm circle
    assert d[:4] == pytest.approx([0.032 * math.sqrt(2)] * 4, abs=1e-4)  # 45.25 mm sides
    assert d[4:] == pytest.approx([0.064, 0.064], abs=1e-4)  # diagonals
    assert a.max_tdoa_s() == pytest.approx(0.064 / 343.0, rel=1e-3)


def test_respeaker_2mic_geometry() -> None:
    a = RESPEAKER_2MIC_HAT
    assert a.raw_channels == (0, 1) and a.channels == 2
    assert a.distance_m(0, 1) == pytest.approx(0.058)


def test_uma8_geometry() -> None:
    a = MINIDSP_UMA8
    assert len(a.positions_m) == 7 and a.raw_channels == tuple(range(7)) and a.channels == 8
    assert a.positions_m[0] == (0.0, 0.0, 0.0)
    for i in range(1, 7):
        assert a.distance_m(0, i) == pytest.approx(0.043, abs=1e-4)  # ring radius
        nxt = 1 + i % 6
        assert a.distance_m(i, nxt) == pytest.approx(0.043, abs=1e-4)  # hexagon side = radius
    assert a.aperture_m == pytest.approx(0.086, abs=1e-4)


@pytest.mark.parametrize("array", KNOWN_ARRAYS, ids=lambda a: a.name)
def test_sanity(array: MicArray) -> None:
    assert len(array.positions_m) == len(array.raw_channels) >= 2
    assert all(z == 0.0 for _, _, z in array.positions_m)  # planar arrays
    centroid = [sum(p[k] for p in array.positions_m) / len(array.positions_m) for k in range(3)]
    assert centroid == pytest.approx([0.0, 0.0, 0.0], abs=1e-4)  # origin at the array centre
    assert min(_pairwise(array)) > 0.02 and array.aperture_m < 0.1  # no duplicates, board-sized
    assert array.usable_with(array.channels)
    assert not array.usable_with(1)  # e.g. processed-only firmware
    assert all(m == m.lower() for m in array.match)


def test_validation() -> None:
    with pytest.raises(ValueError):
        MicArray("x", ((0.0, 0.0, 0.0),), (0, 1), ("x",))
    with pytest.raises(ValueError):
        MicArray("x", ((0.0, 0.0, 0.0), (0.01, 0.0, 0.0)), (1, 1), ("x",))
    with pytest.raises(ValueError):
        MicArray("x", ((0.0, 0.0, 0.0), (0.01, 0.0, 0.0)), (0, 2), ("x",), channels=2)
    assert MicArray("x", ((0.0, 0.0, 0.0), (0.01, 0.0, 0.0)), (0, 3), ("x",)).channels == 4
