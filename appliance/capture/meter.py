"""Level meter for the panel: per-channel levels, clipping and silence (a muted mic).

Time here is captured-audio time, not wall-clock time, so the meter behaves the same for
a live device and a file replayed as fast as possible, and pauses do not count as silence.
"""

from __future__ import annotations

import numpy as np

from appliance.capture.dsp import FLOOR_DBFS, peak_dbfs, rms_dbfs

METER_WINDOW_S = 0.1  # what the panel's level bar shows
CLIP_HOLD_S = 2.0  # a clip stays flagged this long, so a glance at the panel can catch it


class LevelMeter:
    def __init__(self, channels: int, rate: int, *, clip_dbfs: float, silence_dbfs: float) -> None:
        self.clip_dbfs, self.silence_dbfs = clip_dbfs, silence_dbfs
        self.channels, self.rate = channels, rate
        self._window = np.zeros((0, channels), dtype=np.float32)
        self._clock = 0.0  # seconds of audio metered
        self._last_clip: float | None = None
        self._silent = 0.0

    def set_format(self, channels: int, rate: int) -> None:
        """A device may come back from an unplug with another format."""
        if (channels, rate) != (self.channels, self.rate):
            self.channels, self.rate = channels, rate
            self.clear()

    def clear(self) -> None:
        """Nothing is being captured (paused, unplugged): show no level and no clip.

        The silence count survives, because it measures captured audio only.
        """
        self._window = np.zeros((0, self.channels), dtype=np.float32)
        self._last_clip = None

    def update(self, raw: np.ndarray) -> None:
        if len(raw) == 0:
            return
        keep = max(1, round(METER_WINDOW_S * self.rate))
        self._window = np.concatenate((self._window, raw))[-keep:]
        self._clock += len(raw) / self.rate
        if float(np.max(peak_dbfs(raw))) >= self.clip_dbfs:
            self._last_clip = self._clock
        if float(np.max(rms_dbfs(raw))) < self.silence_dbfs:
            self._silent += len(raw) / self.rate
        else:
            self._silent = 0.0

    @property
    def levels_dbfs(self) -> tuple[float, ...]:
        if len(self._window) == 0:
            return (FLOOR_DBFS,) * self.channels
        return tuple(round(float(v), 2) for v in rms_dbfs(self._window))

    @property
    def peak_dbfs(self) -> tuple[float, ...]:
        if len(self._window) == 0:
            return (FLOOR_DBFS,) * self.channels
        return tuple(round(float(v), 2) for v in peak_dbfs(self._window))

    @property
    def clipping(self) -> bool:
        return self._last_clip is not None and self._clock - self._last_clip <= CLIP_HOLD_S

    @property
    def silent_seconds(self) -> float:
        return self._silent
