"""From raw source blocks to CapturedBlocks: the 16 kHz ASR mix, stream time and levels."""

from __future__ import annotations

import numpy as np

from appliance.capture.blocks import CapturedBlock
from appliance.capture.dsp import ASR_RATE, StreamResampler, mix_down
from appliance.capture.meter import LevelMeter
from appliance.config.schema import CaptureConfig


class BlockProcessor:
    def __init__(self, cfg: CaptureConfig) -> None:
        self._cfg = cfg
        self._resampler: StreamResampler | None = None
        self.meter = LevelMeter(0, 0, clip_dbfs=cfg.clip_dbfs, silence_dbfs=cfg.silence_dbfs)
        self.delivered16k = 0  # 16 kHz samples handed to the sink since start

    @property
    def t(self) -> float:
        return self.delivered16k / ASR_RATE

    def set_format(self, rate: int, channels: int) -> None:
        """Called on every (re)open: a replugged device may come back at another rate."""
        if self._resampler is None or self._resampler.rate_in != rate:
            self._resampler = StreamResampler(rate, ASR_RATE)
        self.meter.set_format(channels, rate)

    def process(self, raw: np.ndarray, rate: int, *, last: bool = False) -> CapturedBlock:
        """One block; ``last`` ends the stream so the resampler's tail is included."""
        assert self._resampler is not None, "set_format() first"
        # Out-of-range floats (a float WAV, a misbehaving driver) would break the [-1, 1] contract.
        raw = np.clip(raw, -1.0, 1.0).astype(np.float32)
        mono = self._resampler.process(mix_down(raw, self._cfg.asr_channels))
        if last:
            mono = np.concatenate((mono, self._resampler.flush()))
        self.meter.update(raw)
        raw.flags.writeable = False  # shared by several consumers: nobody may edit it in place
        mono.flags.writeable = False
        return CapturedBlock(raw=raw, rate=rate, mono16k=mono, t=self.t)

    def delivered(self, block: CapturedBlock) -> None:
        self.delivered16k += len(block.mono16k)
