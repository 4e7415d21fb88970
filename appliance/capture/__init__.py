"""Audio capture: a microphone (PortAudio) or a replayed file, as blocks for the rest of the system.

Each block carries the raw multichannel audio at the device rate (direction of arrival)
and a 16 kHz mono mix (VAD, ASR). Audio lives only in RAM: nothing here writes it anywhere.
"""

from appliance.capture.blocks import CapturedBlock
from appliance.capture.capture import Capture, make_source
from appliance.capture.devices import InputDevice, choose_device, list_input_devices
from appliance.capture.dsp import ASR_RATE, StreamResampler, mix_down, peak_dbfs, rms_dbfs
from appliance.capture.source import AudioSource, CaptureError, DeviceUnavailable
from appliance.capture.status import CaptureStatus

__all__ = [
    "ASR_RATE",
    "AudioSource",
    "Capture",
    "CaptureError",
    "CaptureStatus",
    "CapturedBlock",
    "DeviceUnavailable",
    "InputDevice",
    "StreamResampler",
    "choose_device",
    "list_input_devices",
    "make_source",
    "mix_down",
    "peak_dbfs",
    "rms_dbfs",
]
