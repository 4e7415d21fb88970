"""Microphone array geometries, for direction of arrival from the raw channels.

The geometries are data: one TOML file per array in the top-level `hardware/arrays/` folder
(packaged into the wheel as `appliance/hardware/geometries/`; format in its README). Coordinates
are metres in the array's own plane, origin at the array centre, in the frame of the
vendor's / ODAS's published configuration for that board, so DOA code can be checked
against those tools. A clinic's own array is a file of the same form, named by path in
`capture.array` or by name from `capture.arrays_dir`.

Only arrays whose raw microphone signals reach the host work; a processed-only firmware
(e.g. the ReSpeaker's 1-channel firmware) shows up with too few channels, which
`channel_map` reports. A stream with exactly one channel per microphone (a plain
multichannel recording of the raw mics) is read as the mics in order.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

Point = tuple[float, float, float]


@dataclass(frozen=True)
class MicArray:
    name: str
    positions_m: tuple[Point, ...]  # one per raw channel, same order
    raw_channels: tuple[int, ...]  # 0-based indices in the device's capture stream
    match: tuple[str, ...]  # case-insensitive substrings of the ALSA/PortAudio device name
    channels: int = 0  # channels the firmware delivers; 0 = max(raw_channels) + 1
    key: str = ""  # the geometry file's name without .toml

    def __post_init__(self) -> None:
        if len(self.positions_m) != len(self.raw_channels):
            raise ValueError(
                f"{self.name}: {len(self.positions_m)} positions for {len(self.raw_channels)} channels"
            )
        if len(set(self.raw_channels)) != len(self.raw_channels) or min(self.raw_channels) < 0:
            raise ValueError(f"{self.name}: raw channels must be distinct and >= 0")
        if self.channels == 0:
            object.__setattr__(self, "channels", max(self.raw_channels) + 1)
        elif self.channels <= max(self.raw_channels):
            raise ValueError(f"{self.name}: channel {max(self.raw_channels)} beyond {self.channels} channels")

    def distance_m(self, i: int, j: int) -> float:
        """Distance between the i-th and j-th microphone (indices into positions_m)."""
        return math.dist(self.positions_m[i], self.positions_m[j])

    @property
    def aperture_m(self) -> float:
        """Largest microphone spacing; bounds the time difference of arrival."""
        return max(self.distance_m(i, j) for i, j in combinations(range(len(self.positions_m)), 2))

    def max_tdoa_s(self, speed_of_sound: float = 343.0) -> float:
        return self.aperture_m / speed_of_sound

    def channel_map(self, opened_channels: int) -> tuple[int, ...] | None:
        """Stream channel of each microphone for a stream of ``opened_channels``: the device's own
        layout, or, with exactly one channel per microphone, the mics in order; else None."""
        if opened_channels > max(self.raw_channels):
            return self.raw_channels
        if opened_channels == len(self.raw_channels):
            return tuple(range(opened_channels))
        return None

    def usable_with(self, opened_channels: int) -> bool:
        """True if a stream opened with this many channels carries all raw microphones."""
        return self.channel_map(opened_channels) is not None


class ArrayGeometryError(ValueError):
    """A geometry file that cannot be used; the message names the file and the key."""


def _packaged_dir() -> Path:
    """The built-in geometry files: inside the installed package, else the source tree's
    top-level hardware/arrays (an editable install)."""
    inside = Path(__file__).with_name("geometries")
    return inside if inside.is_dir() else Path(__file__).resolve().parents[2] / "hardware" / "arrays"


BUILTIN_DIR = _packaged_dir()
MAX_COORD_M = 2.0  # a microphone further than this from the array centre is a typo (mm for m)


def load_geometry(path: Path | str) -> MicArray:
    """A MicArray from a geometry file; raises ArrayGeometryError naming the file and key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArrayGeometryError(f"{path}: no such array geometry file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ArrayGeometryError(f"{path}: cannot read the array geometry: {exc}") from None

    def fail(key: str, why: str) -> ArrayGeometryError:
        return ArrayGeometryError(f"{path}: {key}: {why}")

    positions = data.get("positions_m")
    if not isinstance(positions, list) or len(positions) < 2:
        raise fail("positions_m", "must list at least two microphones, each [x, y] or [x, y, z] in metres")
    points = []
    for i, p in enumerate(positions):
        if (not isinstance(p, list) or len(p) not in (2, 3)
                or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in p)):
            raise fail("positions_m", f"microphone {i} must be [x, y] or [x, y, z] in metres (got {p!r})")
        if not all(math.isfinite(c) and abs(c) <= MAX_COORD_M for c in p):
            raise fail("positions_m", f"microphone {i} is not within {MAX_COORD_M} m of the centre (got {p!r}): "
                       "positions are in metres")
        points.append((float(p[0]), float(p[1]), float(p[2]) if len(p) == 3 else 0.0))
    if len(set(points)) != len(points):
        raise fail("positions_m", "two microphones are at the same place")
    raw = data.get("raw_channels", list(range(len(points))))
    if (not isinstance(raw, list) or len(raw) != len(points)
            or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in raw)
            or len(set(raw)) != len(raw)):
        raise fail("raw_channels", f"must give {len(points)} distinct channel numbers (0-based), one per "
                   f"microphone in positions_m (got {raw!r})")
    channels = data.get("channels", 0)
    if not isinstance(channels, int) or isinstance(channels, bool) or (channels and channels <= max(raw)):
        raise fail("channels", f"must be more than the highest raw channel {max(raw)} (got {channels!r})")
    match = data.get("match", [])
    if not isinstance(match, list) or not all(isinstance(m, str) and m.strip() for m in match):
        raise fail("match", f"must be a list of parts of device names (got {match!r})")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name.strip():
        raise fail("name", f"must be a non-empty string (got {name!r})")
    return MicArray(name=name.strip(), positions_m=tuple(points), raw_channels=tuple(raw),
                    match=tuple(m.strip().lower() for m in match), channels=channels, key=path.stem)


def geometries(folder: Path | str) -> dict[str, MicArray]:
    """Every geometry file in ``folder`` by name; {} when the folder does not exist."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    return {f.stem: load_geometry(f) for f in sorted(folder.glob("*.toml"))}


# Names for the `capture.array` config key (besides "auto", "none" and a path).
ARRAY_KEYS: dict[str, MicArray] = geometries(BUILTIN_DIR)
KNOWN_ARRAYS: tuple[MicArray, ...] = tuple(ARRAY_KEYS.values())
RESPEAKER_USB_4MIC_V2 = ARRAY_KEYS["respeaker-usb-4mic"]
RESPEAKER_2MIC_HAT = ARRAY_KEYS["respeaker-2mic-hat"]
MINIDSP_UMA8 = ARRAY_KEYS["minidsp-uma8"]


def _clinic_arrays(arrays_dir: Path | str | None) -> dict[str, MicArray]:
    return geometries(arrays_dir) if arrays_dir else {}


def array_for_device(name: str, arrays_dir: Path | str | None = None) -> MicArray | None:
    """The array whose match string occurs in a capture device's name (the clinic's own first), else None."""
    lowered = name.lower()
    for array in (*_clinic_arrays(arrays_dir).values(), *KNOWN_ARRAYS):
        if any(m in lowered for m in array.match):
            return array
    return None


def array_for_capture(setting: str, device_name: str, arrays_dir: Path | str | None = None) -> MicArray | None:
    """The array a capture uses. ``setting`` is `capture.array`: "auto" recognises the device by
    name; "none" gives no direction; a path to a geometry file; else a name, looked up in
    ``arrays_dir`` (`capture.arrays_dir`, the clinic's own) and then among the built-in ones, e.g.
    for a file replay of an array recording, whose "device" is a file name."""
    if setting == "none":
        return None
    if setting == "auto":
        return array_for_device(device_name, arrays_dir)
    if "/" in setting or setting.endswith(".toml"):
        return load_geometry(setting)
    own = _clinic_arrays(arrays_dir)
    found = own.get(setting) or ARRAY_KEYS.get(setting)
    if found is None:
        known = ", ".join(sorted({*own, *ARRAY_KEYS}))
        where = f" or a .toml file in {arrays_dir}" if arrays_dir else ""
        raise ValueError(f"unknown microphone array {setting!r}; known: auto, none, {known}, a path to a "
                         f"geometry file{where}")
    return found
