"""PortAudio input devices: enumeration (quietly), and choosing one by name."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
from dataclasses import dataclass
from typing import Any

from appliance.capture.source import CaptureError, DeviceUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputDevice:
    name: str
    index: int  # valid only until PortAudio is re-initialised; never store it
    max_input_channels: int
    default_rate: float


# ALSA and JACK print dozens of harmless lines (absent cards, no JACK server) while PortAudio
# probes its host APIs. Both libraries take an error callback; a no-op one keeps the journal
# readable. The ctypes callbacks must stay referenced for as long as the libraries may call
# them, hence module globals. (PortAudio's own "Expression ... failed" lines on a read error
# have no such hook in the Debian build; they only appear when a device really fails.)
_ALSA_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                                 ctypes.c_char_p)
_JACK_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p)
_callbacks: list[Any] = []
_silence_lock = threading.Lock()


def _alsa_message(file: bytes | None, line: int, func: bytes | None, err: int, fmt: bytes | None) -> None:
    pass  # the variadic arguments of fmt are out of reach from ctypes; the text alone says little


def _jack_message(msg: bytes | None) -> None:
    log.debug("jack: %s", (msg or b"").decode(errors="replace"))


def silence_native_warnings() -> None:
    """Install no-op ALSA/JACK message handlers, once per process (harmless if absent)."""
    with _silence_lock:
        if _callbacks:
            return
        alsa_cb, jack_cb = _ALSA_HANDLER(_alsa_message), _JACK_HANDLER(_jack_message)
        _callbacks.extend((alsa_cb, jack_cb))
        with contextlib.suppress(OSError, AttributeError):  # no ALSA (not Linux): nothing to silence
            ctypes.CDLL("libasound.so.2").snd_lib_error_set_handler(alsa_cb)
        with contextlib.suppress(OSError, AttributeError):  # PortAudio built without JACK
            jack = ctypes.CDLL("libjack.so.0")
            jack.jack_set_error_function(jack_cb)
            jack.jack_set_info_function(jack_cb)


def import_pyaudio() -> Any:
    try:
        import pyaudio
    except ImportError as exc:  # the "device" extra is not installed on dev machines
        raise CaptureError(
            "PyAudio is not installed, so no microphone can be used: install the device extra "
            "(pip install -e '.[device]', which needs the apt package portaudio19-dev)"
        ) from exc
    return pyaudio


def open_pyaudio() -> Any:
    """A fresh PortAudio session; its device list is a snapshot taken now (hot-plug aware)."""
    pyaudio = import_pyaudio()
    silence_native_warnings()
    return pyaudio.PyAudio()


def enumerate_inputs(pa: Any) -> tuple[list[InputDevice], int | None]:
    """Input-capable devices of a PyAudio session and the index of the default input."""
    devices = []
    for i in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(i)
        if int(info.get("maxInputChannels", 0)) > 0:
            devices.append(InputDevice(str(info["name"]), i, int(info["maxInputChannels"]),
                                       float(info["defaultSampleRate"])))
    try:
        default = int(pa.get_default_input_device_info()["index"])
    except (OSError, KeyError):
        default = None
    return devices, default


def list_input_devices() -> list[InputDevice]:
    """Input devices as PortAudio sees them now (for `appliance devices`)."""
    pa = open_pyaudio()
    try:
        return enumerate_inputs(pa)[0]
    finally:
        pa.terminate()


def choose_device(devices: list[InputDevice], wanted: str, default_index: int | None) -> InputDevice:
    """The device whose name contains ``wanted`` (case-insensitive); "" means the default input.

    An exact name wins over a longer name containing it, otherwise the first match in
    PortAudio's order. Indices shift when devices come and go, so they are never config.
    """
    if not wanted:
        for d in devices:
            if d.index == default_index:
                return d
        raise DeviceUnavailable("there is no default audio input device")
    key = wanted.casefold()
    matches = [d for d in devices if key in d.name.casefold()]
    exact = [d for d in matches if d.name.casefold() == key]
    if exact or matches:
        return (exact or matches)[0]
    names = ", ".join(repr(d.name) for d in devices) or "none"
    raise DeviceUnavailable(f"no audio input device name contains {wanted!r} (inputs present: {names})")
