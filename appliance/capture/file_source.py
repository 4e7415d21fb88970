"""A WAV/FLAC file replayed as if it were a microphone (demo, tests, bench)."""

from __future__ import annotations

import logging
import os
import time

import numpy as np
import soundfile as sf

from appliance.capture.source import CaptureError, check_asr_channels
from appliance.config.schema import CaptureConfig

log = logging.getLogger(__name__)


class FileSource:
    """Blocks of cfg.block_ms from cfg.file, paced at real time or as fast as possible.

    In real-time mode the file stands for a room that keeps talking: time spent closed
    (paused) is skipped by seeking to where the speech has got to meanwhile. In fast mode
    there is no clock, and reopening continues where the last block ended.
    """

    def __init__(self, cfg: CaptureConfig) -> None:
        self._cfg = cfg
        self._path = cfg.file
        self._file: sf.SoundFile | None = None
        self._rate = self._channels = self._total = 0
        self._pos = 0  # next frame to deliver
        self._at_end = False
        # Real time: file position p is due at wall time _anchor_wall + (p - _anchor_pos) / rate.
        self._anchor_wall: float | None = None
        self._anchor_pos = 0

    @property
    def name(self) -> str:
        return os.path.basename(self._path) or self._path

    @property
    def rate(self) -> int:
        return self._rate

    @property
    def channels(self) -> int:
        return self._channels

    @property
    def at_end(self) -> bool:
        return self._at_end

    @property
    def position(self) -> int:
        """Next frame of the file to be delivered."""
        return self._pos

    def open(self) -> None:
        if self._file is not None:
            return
        path = self._path
        if not path:
            raise CaptureError('capture.source is "file" but capture.file is empty')
        if not os.path.isfile(path):
            raise CaptureError(f"audio file not found: {path}")
        try:
            f = sf.SoundFile(path)
        except (sf.LibsndfileError, RuntimeError, OSError, TypeError) as exc:
            raise CaptureError(f"cannot read audio file {path}: {exc}") from exc
        try:
            check_asr_channels(self._cfg.asr_channels, f.channels, f"audio file {path}")
            if not f.seekable():
                raise CaptureError(f"audio file {path} cannot be replayed: it is not seekable")
            self._rate, self._channels, self._total = f.samplerate, f.channels, f.frames
            now = time.monotonic()
            if self._cfg.realtime and self._anchor_wall is not None:
                world = self._anchor_pos + int((now - self._anchor_wall) * self._rate)
                self._pos = min(max(self._pos, world), self._total)
            f.seek(self._pos)
        except BaseException:
            f.close()
            raise
        self._file = f
        self._anchor_wall, self._anchor_pos = now, self._pos
        self._at_end = self._pos >= self._total

    def read(self) -> np.ndarray | None:
        f = self._file
        if f is None:
            raise CaptureError(f"audio file {self._path} is not open")
        want = min(max(1, round(self._rate * self._cfg.block_ms / 1000)), self._total - self._pos)
        if want <= 0:
            self._at_end = True
            return None
        try:
            data = f.read(want, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise CaptureError(f"cannot read audio file {self._path} at frame {self._pos}: {exc}") from exc
        if len(data) == 0:  # the header promised more than the file holds (truncated)
            self._total, self._at_end = self._pos, True
            return None
        self._pos += len(data)
        if len(data) < want:
            self._total = self._pos
        self._at_end = self._pos >= self._total
        if self._cfg.realtime and self._anchor_wall is not None:
            # Like a device: a block is available once its last sample has been "spoken".
            due = self._anchor_wall + (self._pos - self._anchor_pos) / self._rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        return data

    def close(self) -> None:
        f, self._file = self._file, None
        if f is not None:
            f.close()
