"""What every audio source offers the capture loop, and the errors it raises."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class CaptureError(Exception):
    """Audio capture cannot go on; the message names the device or file and says why."""


class DeviceUnavailable(CaptureError):
    """The input device is absent or went away; worth retrying (it may be plugged back in)."""


class AudioSource(Protocol):
    """A source of float32 blocks shaped (frames, channels) at the source's native rate.

    ``open`` and ``close`` may be called repeatedly: the capture loop closes the source on
    pause (so nothing is read while paused) and reopens it on resume or after an unplug.
    ``read`` blocks until one block is available (a device delivers in real time) and
    returns None once a finite source is exhausted.
    """

    @property
    def name(self) -> str: ...
    @property
    def rate(self) -> int: ...
    @property
    def channels(self) -> int: ...
    @property
    def at_end(self) -> bool: ...  # True when the block just read was the last one

    def open(self) -> None: ...
    def read(self) -> np.ndarray | None: ...
    def close(self) -> None: ...


def check_asr_channels(asr_channels: tuple[int, ...], channels: int, what: str) -> None:
    """Config indices must exist on the device, else the ASR mix would silently be wrong."""
    bad = [c for c in asr_channels if not 0 <= c < channels]
    if bad:
        raise CaptureError(
            f"capture.asr_channels {list(asr_channels)} does not fit {what}: it has {channels} "
            f"channel(s), numbered 0 to {channels - 1}"
        )
