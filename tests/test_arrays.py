"""Microphone array geometries and device-name lookup."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import zipfile
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from appliance.config import parse_config
from appliance.config.rules import check
from appliance.diarize import estimate_direction
from appliance.hardware.arrays import (
    ARRAY_KEYS,
    KNOWN_ARRAYS,
    MINIDSP_UMA8,
    RESPEAKER_2MIC_HAT,
    RESPEAKER_USB_4MIC_V2,
    ArrayGeometryError,
    MicArray,
    array_for_capture,
    array_for_device,
    load_geometry,
)
from tests.speech import file_direction_tracker
from tests.test_diarize_voices import plane_wave


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


# -- geometry files ---------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
SQUARE = """# a clinic's own square array, mics wired in another order
name = "Clinic square"
raw_channels = [3, 0, 2, 1]
positions_m = [[-0.05, 0.0], [0.0, -0.05], [0.05, 0.0], [0.0, 0.05]]
match = ["clinic square usb"]
"""


def test_the_built_in_geometries_are_the_files_in_hardware_arrays() -> None:
    files = sorted((REPO / "hardware" / "arrays").glob("*.toml"))
    assert sorted(ARRAY_KEYS) == [f.stem for f in files] == ["minidsp-uma8", "respeaker-2mic-hat",
                                                              "respeaker-usb-4mic"]
    for f in files:
        assert load_geometry(f) == ARRAY_KEYS[f.stem]
    assert set(KNOWN_ARRAYS) == set(ARRAY_KEYS.values())


@pytest.mark.slow
def test_a_built_wheel_carries_the_geometries_and_reads_them(tmp_path) -> None:
    """`pip wheel` of the project (as clinic IT's provisioning does); the wheel, unpacked
    and imported on its own, finds the built-in arrays inside itself."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
                    str(REPO)], check=True, capture_output=True, timeout=600)
    wheel = next((tmp_path / "dist").glob("exam_scribe-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        inside = sorted(n for n in z.namelist() if n.startswith("appliance/hardware/geometries/"))
        z.extractall(tmp_path / "unpacked")
    assert inside == [f"appliance/hardware/geometries/{k}.toml" for k in sorted(ARRAY_KEYS)]
    probe = ("import json, appliance.hardware.arrays as a; "
             "print(json.dumps([str(a.BUILTIN_DIR), sorted(a.ARRAY_KEYS), a.RESPEAKER_USB_4MIC_V2.positions_m]))")
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(tmp_path / "unpacked")}, cwd=tmp_path)
    where, keys, positions = json.loads(out.stdout)
    assert Path(where) == tmp_path / "unpacked" / "appliance" / "hardware" / "geometries"
    assert keys == sorted(ARRAY_KEYS) and positions[0] == [-0.032, 0.0, 0.0]


def test_a_clinics_own_array_by_name_path_or_device_name(tmp_path) -> None:
    folder = tmp_path / "arrays"
    folder.mkdir()
    (folder / "clinic-square.toml").write_text(SQUARE)
    own = array_for_capture("clinic-square", "visit.wav", folder)
    assert own.name == "Clinic square" and own.raw_channels == (3, 0, 2, 1) and own.channels == 4
    assert own.positions_m[0] == (-0.05, 0.0, 0.0) and own.key == "clinic-square"
    assert array_for_capture(str(folder / "clinic-square.toml"), "visit.wav") == own
    assert array_for_capture("auto", "Clinic Square USB: Audio (hw:2,0)", folder) == own
    assert array_for_capture("respeaker-usb-4mic", "x", folder) is RESPEAKER_USB_4MIC_V2  # built-ins still there
    with pytest.raises(ValueError, match=r"unknown microphone array 'nine'; known: auto, none, clinic-square, "):
        array_for_capture("nine", "visit.wav", folder)


@pytest.mark.parametrize(("text", "key"), [
    ("positions_m = [[-50.0, 0.0], [50.0, 0.0]]", "positions_m: microphone 0 is not within 2.0 m"),
    ("positions_m = [[0.0, 0.0]]", "positions_m: must list at least two"),
    ("positions_m = [[0.0, 0.0], [0.0, 0.0]]", "positions_m: two microphones are at the same place"),
    ("positions_m = [[0.0, 0.0], [0.1, 0.0]]\nraw_channels = [0]", "raw_channels: must give 2 distinct"),
    ("positions_m = [[0.0, 0.0], [0.1, 0.0]]\nraw_channels = [0, 5]\nchannels = 4", "channels: must be more"),
    ("positions_m = [[0.0, 0.0], [0.1, 0.0]]\nmatch = \"usb\"", "match: must be a list"),
    ("positions_m = [[0.0, 0.0], [0.1 0.0]]", "cannot read the array geometry"),
])
def test_a_bad_geometry_file_is_refused_naming_file_and_key(tmp_path, text: str, key: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ArrayGeometryError, match=re.escape(f"{f}: ") + re.escape(key)):
        load_geometry(f)
    problems = [str(p) for p in check(parse_config({"capture": {"array": str(f)}}))]
    assert any(p.startswith("capture.array: ") and key in p for p in problems), problems
    problems = [str(p) for p in check(parse_config({"capture": {"arrays_dir": str(tmp_path)}}))]
    assert any(p.startswith("capture.arrays_dir: ") and key in p for p in problems), problems


def test_a_plain_recording_of_the_raw_mics_gets_direction(tmp_path) -> None:
    """A 4-channel file of just the ReSpeaker's raw mics (not its 6-channel firmware layout),
    and the same sound through a clinic's own array with its mics wired in another order."""
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 0.1, 16000 * 2).astype(np.float32)  # broadband, like speech for SRP-PHAT
    six = plane_wave(noise, RESPEAKER_USB_4MIC_V2, 120.0, snr_db=25.0)
    four = six[:, 1:5]
    assert RESPEAKER_USB_4MIC_V2.channel_map(6) == (1, 2, 3, 4)
    assert RESPEAKER_USB_4MIC_V2.channel_map(4) == (0, 1, 2, 3)
    assert RESPEAKER_USB_4MIC_V2.channel_map(2) is None and RESPEAKER_USB_4MIC_V2.channel_map(3) is None
    for raw in (six, four):
        d = estimate_direction(raw, 16000, RESPEAKER_USB_4MIC_V2)
        assert d is not None and abs((d.azimuth_deg - 120.0 + 180) % 360 - 180) <= 5, d

    sf.write(tmp_path / "four.wav", four, 16000, subtype="FLOAT")
    cfg = parse_config({"capture": {"array": "respeaker-usb-4mic", "arrays_dir": str(tmp_path / "none")}})
    tracker = file_direction_tracker(cfg, str(tmp_path / "four.wav"))
    assert tracker is not None
    tracker.feed(four, 0.0)
    d = tracker.direction(0.0, 2.0)
    assert d is not None and abs((d.azimuth_deg - 120.0 + 180) % 360 - 180) <= 5, d

    (tmp_path / "square.toml").write_text(SQUARE)
    own = load_geometry(tmp_path / "square.toml")
    wired = plane_wave(noise, own, 300.0, snr_db=25.0)  # channel 3 carries mic 0, and so on
    d = estimate_direction(wired, 16000, own)
    assert d is not None and abs((d.azimuth_deg - 300.0 + 180) % 360 - 180) <= 5, d
