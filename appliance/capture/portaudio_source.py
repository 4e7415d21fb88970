"""A live input device through PortAudio (PyAudio), found by name each time it is opened."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import numpy as np

from appliance.capture.devices import choose_device, enumerate_inputs, import_pyaudio, open_pyaudio
from appliance.capture.source import CaptureError, DeviceUnavailable, check_asr_channels
from appliance.config.schema import CaptureConfig

log = logging.getLogger(__name__)

# PortAudio error codes that mean "this configuration can never work on this device", as
# opposed to "the device is not there right now" (worth waiting for).
_CONFIG_ERRORS = {
    -9998: "channel count",  # paInvalidChannelCount
    -9997: "sample rate",  # paInvalidSampleRate
    -9994: "sample format",  # paSampleFormatNotSupported
}


class PortAudioSource:
    """Blocking reads of cfg.block_ms from the device whose name contains cfg.device.

    A fresh PortAudio session is made on every open, because PortAudio only enumerates
    devices when it initialises: a microphone plugged back in is invisible to an old session.
    """

    def __init__(self, cfg: CaptureConfig) -> None:
        self._cfg = cfg
        self._pa: Any = None
        self._stream: Any = None
        self._name = cfg.device or "default input"
        self._rate, self._channels, self._frames = cfg.sample_rate, cfg.channels, 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def rate(self) -> int:
        return self._rate

    @property
    def channels(self) -> int:
        return self._channels

    @property
    def at_end(self) -> bool:
        return False  # a microphone never runs out

    def open(self) -> None:
        if self._stream is not None:
            return
        pyaudio = import_pyaudio()
        pa = open_pyaudio()
        try:
            devices, default = enumerate_inputs(pa)
            dev = choose_device(devices, self._cfg.device, default)
            rate = self._cfg.sample_rate or round(dev.default_rate)
            channels = self._cfg.channels or dev.max_input_channels
            what = f"input device {dev.name!r}"
            if channels > dev.max_input_channels:
                raise CaptureError(f"{what} has {dev.max_input_channels} input channel(s) but "
                                   f"capture.channels asks for {channels}")
            check_asr_channels(self._cfg.asr_channels, channels, what)
            frames = max(1, round(rate * self._cfg.block_ms / 1000))
            try:
                stream = pa.open(format=pyaudio.paFloat32, channels=channels, rate=rate, input=True,
                                 input_device_index=dev.index, frames_per_buffer=frames)
            except OSError as exc:
                code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
                detail = f"cannot open {what} at {rate} Hz, {channels} channel(s): {exc}"
                if code in _CONFIG_ERRORS:
                    raise CaptureError(f"{detail} (unsupported {_CONFIG_ERRORS[code]}; "
                                       f"check capture.sample_rate / capture.channels)") from exc
                raise DeviceUnavailable(detail) from exc
        except BaseException:
            pa.terminate()
            raise
        self._pa, self._stream = pa, stream
        self._name, self._rate, self._channels, self._frames = dev.name, rate, channels, frames
        log.info("opened input device %r: %d Hz, %d channel(s), %d frames per block",
                 dev.name, rate, channels, frames)

    def read(self) -> np.ndarray:
        if self._stream is None:
            raise DeviceUnavailable(f"input device {self._name!r} is not open")
        try:
            # Overflows (the reader was late) lose samples inside PortAudio; raising would
            # lose the whole block as well, so they are tolerated.
            data = self._stream.read(self._frames, exception_on_overflow=False)
        except OSError as exc:  # ALSA reports a vanished device as a host error
            raise DeviceUnavailable(f"reading from input device {self._name!r} failed: {exc}") from exc
        return np.frombuffer(data, dtype=np.float32).reshape(-1, self._channels)

    def close(self) -> None:
        stream, pa, self._stream, self._pa = self._stream, self._pa, None, None
        if stream is not None:
            with contextlib.suppress(OSError):  # already dead after an unplug; close() still frees it
                stream.stop_stream()
            try:
                stream.close()
            except OSError as exc:
                log.debug("closing %r: %s", self._name, exc)
        if pa is not None:
            pa.terminate()
