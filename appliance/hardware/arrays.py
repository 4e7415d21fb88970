"""Microphone array geometries, for direction of arrival from the raw channels.

Coordinates are metres in the array's own plane (z = 0), origin at the array centre, in
the frame used by the vendor's / ODAS's published configuration for that board, so
DOA code can be checked against those tools. Only arrays whose raw microphone signals
reach the host are listed; a processed-only firmware (e.g. the ReSpeaker's 1-channel
firmware) shows up with too few channels, which `usable_with` reports.

Sources (checked, not copied):
- ReSpeaker USB 4-Mic Array v2.0: Seeed's `respeaker/usb_4_mic_array` odas.cfg and README
  (6-channel firmware: ch0 processed, ch1-4 raw mics, ch5 playback; mics at radius 32 mm).
- ReSpeaker 2-Mics Pi HAT: Seeed's `voice-engine` DOA for the 2-mic HAT (58 mm apart);
  the WM8960 codec delivers left/right mic as ch0/ch1.
- miniDSP UMA-8 (raw firmware "micArray RAW SPK", 8 channels): introlab ODAS uma8/minidsp
  configs - ch0 centre mic, ch1-6 on a 43 mm radius ring 60 degrees apart, ch7 unused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

Point = tuple[float, float, float]


@dataclass(frozen=True)
class MicArray:
    name: str
    positions_m: tuple[Point, ...]  # one per raw channel, same order
    raw_channels: tuple[int, ...]  # 0-based indices in the device's capture stream
    match: tuple[str, ...]  # case-insensitive substrings of the ALSA/PortAudio device name
    channels: int = 0  # channels the firmware delivers; 0 = max(raw_channels) + 1

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

    def usable_with(self, opened_channels: int) -> bool:
        """True if a stream opened with this many channels carries all raw microphones."""
        return opened_channels > max(self.raw_channels)


def _ring(radius_m: float, count: int, start_deg: float, step_deg: float) -> tuple[Point, ...]:
    """Points on a circle, rounded to 0.1 mm (the precision of the published drawings)."""
    out = []
    for k in range(count):
        a = math.radians(start_deg + k * step_deg)
        out.append((round(radius_m * math.cos(a), 4) + 0.0, round(radius_m * math.sin(a), 4) + 0.0, 0.0))
    return tuple(out)


# ch1 at -x, then -y, +x, +y: 90 degrees apart on a 32 mm radius (45.25 mm adjacent, 64 mm across).
RESPEAKER_USB_4MIC_V2 = MicArray(
    name="ReSpeaker USB 4-Mic Array v2.0",
    positions_m=_ring(0.032, 4, 180.0, 90.0),
    raw_channels=(1, 2, 3, 4),
    match=("respeaker 4 mic array", "arrayuac10"),
    channels=6,
)

# MIC_L (ch0) and MIC_R (ch1) on either end of the board, 58 mm apart.
RESPEAKER_2MIC_HAT = MicArray(
    name="ReSpeaker 2-Mics Pi HAT",
    positions_m=((-0.029, 0.0, 0.0), (0.029, 0.0, 0.0)),
    raw_channels=(0, 1),
    # Card name of the seeed-voicecard driver and its 15-character ALSA card id. Not the
    # generic "wm8960-soundcard": other WM8960 HATs use it with different mic placement.
    match=("seeed-2mic-voicecard", "seeed2micvoicec"),
    channels=2,
)

# ch0 centre; ch1 at +y, then clockwise every 60 degrees on a 43 mm radius.
MINIDSP_UMA8 = MicArray(
    name="miniDSP UMA-8",
    positions_m=((0.0, 0.0, 0.0), *_ring(0.043, 6, 90.0, -60.0)),
    raw_channels=(0, 1, 2, 3, 4, 5, 6),
    match=("uma-8", "uma8", "micarray raw"),
    channels=8,
)

KNOWN_ARRAYS: tuple[MicArray, ...] = (RESPEAKER_USB_4MIC_V2, RESPEAKER_2MIC_HAT, MINIDSP_UMA8)

# Names for the `capture.array` config key (besides "auto" and "none").
ARRAY_KEYS: dict[str, MicArray] = {
    "respeaker-usb-4mic": RESPEAKER_USB_4MIC_V2,
    "respeaker-2mic-hat": RESPEAKER_2MIC_HAT,
    "minidsp-uma8": MINIDSP_UMA8,
}


def array_for_device(name: str) -> MicArray | None:
    """The known array whose match string occurs in a capture device's name, else None."""
    lowered = name.lower()
    for array in KNOWN_ARRAYS:
        if any(m in lowered for m in array.match):
            return array
    return None


def array_for_capture(setting: str, device_name: str) -> MicArray | None:
    """The array a capture uses: ``setting`` is `capture.array` ("auto": recognise the device by
    name; "none": no direction; else a key of ARRAY_KEYS, e.g. for a file replay of an array
    recording, whose "device" is a file name)."""
    if setting == "none":
        return None
    if setting == "auto":
        return array_for_device(device_name)
    try:
        return ARRAY_KEYS[setting]
    except KeyError:
        raise ValueError(f"unknown microphone array {setting!r}; known: auto, none, {', '.join(ARRAY_KEYS)}") from None
