"""The capture state machine with a scripted source, and choosing devices by name.

The real device path is covered in test_capture_portaudio.py; here a source that can be
"unplugged" at will checks the bookkeeping quickly and deterministically.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from appliance.capture import (
    Capture,
    CaptureError,
    DeviceUnavailable,
    InputDevice,
    choose_device,
    make_source,
)
from appliance.capture.file_source import FileSource
from appliance.config.schema import CaptureConfig
from tests.sinks import Recorder


class PluggableMic:
    """A 2-channel 16 kHz "device" the test can unplug and plug back in."""

    name, rate, channels, at_end = "Test Mic", 16000, 2, False

    def __init__(self) -> None:
        self.present = True
        self.is_open = False
        self.opens = 0
        self.open_attempts = 0
        self.reads_while_closed = 0

    def open(self) -> None:
        self.open_attempts += 1
        if not self.present:
            raise DeviceUnavailable("no Test Mic")
        self.is_open = True
        self.opens += 1

    def read(self) -> np.ndarray:
        if not self.is_open:
            self.reads_while_closed += 1
        time.sleep(0.004)
        if not self.present:
            raise DeviceUnavailable("Test Mic went away")
        return np.full((512, 2), 0.1, np.float32)

    def close(self) -> None:
        self.is_open = False


def wait_for(pred, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.mark.slow
def test_unplug_retries_and_time_continues():
    mic, sink = PluggableMic(), Recorder()
    cap = Capture(CaptureConfig(reconnect_seconds=0.2), sink, source=mic)
    cap.start()
    wait_for(lambda: sink.count() >= 5)
    mic.present = False
    wait_for(lambda: cap.status().state == "unplugged")
    st = cap.status()
    assert st.message == "Microphone unplugged — waiting for it to come back"
    assert not st.clipping and st.levels_dbfs == (-120.0, -120.0)
    n = sink.count()
    attempts = mic.open_attempts
    time.sleep(0.5)
    assert sink.count() == n and not mic.is_open
    assert 1 <= mic.open_attempts - attempts <= 4  # retried at the configured pace, not in a busy loop
    mic.present = True
    wait_for(lambda: sink.count() >= n + 5)
    assert cap.status().state == "ok" and mic.opens == 2
    cap.stop()
    ts = [b.t for b in sink.blocks]
    assert ts == pytest.approx([i * 512 / 16000 for i in range(len(ts))])
    assert mic.reads_while_closed == 0 and not mic.is_open


def test_missing_device_at_start_waits_for_it():
    mic, sink = PluggableMic(), Recorder()
    mic.present = False
    cap = Capture(CaptureConfig(reconnect_seconds=0.2), sink, source=mic)
    cap.start()  # no exception: a mic plugged in later is picked up
    st = cap.status()
    assert st.state == "unplugged" and "not found" in st.message
    wait_for(lambda: mic.open_attempts >= 3)  # retries do not change the words
    assert "not found" in cap.status().message
    mic.present = True
    wait_for(lambda: sink.count() >= 3)
    assert cap.status().state == "ok" and sink.blocks[0].t == 0.0
    cap.stop()


def test_pause_while_unplugged_then_resume():
    mic, sink = PluggableMic(), Recorder()
    cap = Capture(CaptureConfig(reconnect_seconds=0.2), sink, source=mic)
    cap.start()
    mic.present = False
    wait_for(lambda: cap.status().state == "unplugged")
    cap.pause()
    assert cap.status().state == "paused"
    attempts = mic.open_attempts
    mic.present = True
    time.sleep(0.4)
    assert mic.open_attempts == attempts and not mic.is_open  # paused: not even trying
    cap.resume()
    n = sink.count()
    wait_for(lambda: sink.count() >= n + 3)
    assert cap.status().state == "ok"
    cap.stop()


def test_status_reports_the_device_and_format():
    mic = PluggableMic()
    cap = Capture(CaptureConfig(), Recorder(), source=mic)
    assert cap.status().state == "stopped"
    cap.start()
    wait_for(lambda: cap.status().levels_dbfs[0] > -30)
    st = cap.status()
    assert (st.state, st.device, st.rate, st.channels) == ("ok", "Test Mic", 16000, 2)
    assert st.levels_dbfs == pytest.approx((-20.0, -20.0), abs=0.01)
    assert st.message == "Listening (Test Mic)"
    cap.stop()
    assert cap.status().state == "stopped" and cap.status().message == "Not recording"


DEVICES = [
    InputDevice("HDA Intel PCH: ALC257 Analog (hw:0,0)", 0, 2, 44100.0),
    InputDevice("ReSpeaker 4 Mic Array (UAC1.0): USB Audio (hw:2,0)", 3, 6, 16000.0),
    InputDevice("pulse", 5, 32, 44100.0),
    InputDevice("pulseaudio-extra", 6, 2, 48000.0),
]


def test_device_is_chosen_by_case_insensitive_substring():
    assert choose_device(DEVICES, "respeaker", None).index == 3
    assert choose_device(DEVICES, "RESPEAKER 4 mic", None).index == 3
    assert choose_device(DEVICES, "PULSE", None).name == "pulse"  # an exact name beats a longer one
    assert choose_device(DEVICES, "pulseaudio", None).index == 6
    assert choose_device(DEVICES, "", 3).name.startswith("ReSpeaker")  # empty: the default input


def test_no_matching_device_lists_what_is_there():
    with pytest.raises(DeviceUnavailable, match="UMA-8") as err:
        choose_device(DEVICES, "UMA-8", 0)
    assert "ReSpeaker 4 Mic Array" in str(err.value)
    with pytest.raises(DeviceUnavailable, match="no default"):
        choose_device(DEVICES, "", None)


def test_make_source_follows_the_config():
    assert isinstance(make_source(CaptureConfig(source="file", file="x.wav")), FileSource)
    pa = make_source(CaptureConfig(source="portaudio", device="respeaker"))
    assert pa.name == "respeaker"  # nothing opened yet: no PortAudio session needed
    with pytest.raises(CaptureError, match=r"capture\.source"):
        make_source(CaptureConfig(source="alsa"))
