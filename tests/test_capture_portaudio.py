"""The real PortAudio path (PyAudio → ALSA "pulse" device → a private PulseAudio), no mocks.

Sound is played into the "room" null sink with paplay and recorded from its monitor, so
what the capture stage delivers can be compared with what was played, sample for sample.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import correlate, resample_poly

from appliance.capture import Capture, CapturedBlock, list_input_devices
from appliance.config.schema import CaptureConfig
from tests.pulse import ROOM_CHANNELS, ROOM_RATE, PulseServer, pulse_server
from tests.sinks import Recorder

pytestmark = [pytest.mark.portaudio, pytest.mark.slow]


@pytest.fixture
def pulse():
    with pulse_server() as server:
        yield server


def wait_for(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def room_cfg(**kw) -> CaptureConfig:
    # The ALSA "pulse" device advertises 32 channels at 44.1 kHz whatever the server has, so
    # the room's real format is asked for explicitly (as a site with such a device would).
    base = dict(source="portaudio", device="PULSE", sample_rate=ROOM_RATE, channels=ROOM_CHANNELS,
                block_ms=32, reconnect_seconds=0.5)
    base.update(kw)
    return CaptureConfig(**base)


def band_noise(seconds: float, channels: int, seed: int) -> np.ndarray:
    """Distinct noise per channel, limited below 8 kHz so the 16 kHz mix keeps all of it."""
    rng = np.random.default_rng(seed)
    low = rng.normal(0, 0.15, (int(seconds * 16000), channels))
    return np.clip(resample_poly(low, 3, 1, axis=0), -0.95, 0.95).astype(np.float32)


def best_match(captured: np.ndarray, played: np.ndarray) -> tuple[int, float]:
    """Lag of ``played`` inside ``captured`` and the normalised correlation there."""
    assert len(captured) >= len(played), "captured less audio than was played"
    xc = correlate(captured, played, mode="valid", method="fft")
    lag = int(np.argmax(xc))
    return lag, ncc(captured[lag:lag + len(played)], played)


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def test_device_opens_at_its_native_format_when_not_configured(pulse: PulseServer):
    devices = {d.name: d for d in list_input_devices()}
    assert "pulse" in devices, devices
    native = devices["pulse"]
    rec = Recorder()
    cap = Capture(room_cfg(sample_rate=0, channels=0, device="puls"), rec)
    cap.start()
    try:
        wait_for(lambda: rec.count() > 3, 10, "the first blocks")
        st = cap.status()
    finally:
        cap.stop()
    assert (st.device, st.rate, st.channels) == ("pulse", round(native.default_rate), native.max_input_channels)
    block = rec.blocks[1]
    assert block.rate == st.rate and block.raw.shape == (round(st.rate * 0.032), st.channels)
    assert len(block.mono16k) in (511, 512)  # 32 ms at 16 kHz, whatever the native rate


def test_captured_audio_matches_what_was_played_per_channel(pulse: PulseServer, tmp_path: Path):
    played = band_noise(1.5, ROOM_CHANNELS, seed=1)
    wav = tmp_path / "four.wav"
    sf.write(wav, played, ROOM_RATE, subtype="PCM_16")
    played = sf.read(wav, dtype="float32")[0]
    rec = Recorder()
    cap = Capture(room_cfg(asr_channels=(2,)), rec)
    cap.start()
    try:
        wait_for(lambda: rec.count() > 3, 10, "the first blocks from PortAudio")
        st = cap.status()
        assert (st.state, st.device, st.rate, st.channels) == ("ok", "pulse", ROOM_RATE, ROOM_CHANNELS)
        loudest = [-200.0]
        player = pulse.play_async(wav)
        while player.poll() is None:  # the panel's meter must move while sound plays
            loudest[0] = max(loudest[0], *cap.status().levels_dbfs)
            time.sleep(0.05)
        assert player.returncode == 0
        time.sleep(0.4)  # the tail still in PulseAudio's buffers
    finally:
        cap.stop()
    assert -25.0 < loudest[0] < -10.0, loudest  # noise of std 0.15 is about -16.5 dBFS RMS

    raw = rec.raw()
    assert raw.dtype == np.float32 and raw.shape[1] == ROOM_CHANNELS
    lag, score = best_match(raw[:, 0], played[:, 0])
    assert score > 0.9, score
    seg = raw[lag:lag + len(played)]
    for ch in range(ROOM_CHANNELS):
        assert ncc(seg[:, ch], played[:, ch]) > 0.9, ch  # each channel where it belongs...
        gain = np.std(seg[:, ch]) / np.std(played[:, ch])
        assert 0.9 < gain < 1.1, (ch, gain)  # ...at the level it was played
        for other in range(ROOM_CHANNELS):
            if other != ch:
                assert abs(ncc(seg[:, ch], played[:, other])) < 0.2, (ch, other)

    # The ASR stream is channel 2 alone, at 16 kHz, matching the played channel 2.
    mono = rec.mono()
    # A live stream is never flushed: the resampler holds back half its filter (10 samples).
    assert len(raw) / 3 - 11 <= len(mono) <= len(raw) / 3

    def as_heard(ch: int) -> np.ndarray:  # played channel `ch`, where it was captured, at 16 kHz
        placed = np.zeros(len(raw))
        placed[lag:lag + len(played)] = played[:, ch]
        return resample_poly(placed, 1, 3)[:len(mono)]

    assert ncc(mono, as_heard(2)) > 0.9, ncc(mono, as_heard(2))
    assert abs(ncc(mono, as_heard(0))) < 0.2

    ts = [b.t for b in rec.blocks]
    assert ts[0] == 0.0 and all(b > a for a, b in itertools.pairwise(ts))


def test_pause_closes_the_stream_and_nothing_is_delivered(pulse: PulseServer):
    delivered_while_paused: list[float] = []
    paused = threading.Event()
    rec = Recorder()

    def sink(block: CapturedBlock) -> None:
        if paused.is_set():
            delivered_while_paused.append(block.t)
        rec(block)

    cap = Capture(room_cfg(), sink)
    cap.start()
    try:
        wait_for(lambda: rec.count() > 3, 10, "the first blocks")
        assert pulse.recording_streams() == 1
        cap.pause()
        paused.set()
        n = rec.count()
        assert cap.status().state == "paused"
        assert pulse.recording_streams() == 0  # the PortAudio stream really is closed
        time.sleep(0.6)
        assert rec.count() == n
        paused.clear()
        cap.resume()
        wait_for(lambda: rec.count() > n + 3, 10, "blocks after resume")
        assert pulse.recording_streams() == 1
        assert cap.status().state == "ok"
    finally:
        cap.stop()
    assert delivered_while_paused == []
    assert pulse.recording_streams() == 0


def test_unplug_and_replug_the_device(pulse: PulseServer, tmp_path: Path):
    rec = Recorder()
    cap = Capture(room_cfg(), rec)
    cap.start()
    try:
        wait_for(lambda: rec.count() > 3, 10, "the first blocks")
        # Unloading the null sink removes "room.monitor"; with no other source to move the
        # stream to, PulseAudio kills it and PortAudio's read fails, as on a USB unplug.
        pulse.unload_room()
        wait_for(lambda: cap.status().state == "unplugged", 5, "the unplugged state")
        st = cap.status()
        assert "unplugged" in st.message.lower()
        assert st.levels_dbfs == (-120.0,) * ROOM_CHANNELS
        n_before = rec.count()
        t_next = rec.mono().size / 16000
        time.sleep(1.2)  # several reconnect attempts fail meanwhile
        assert cap.status().state == "unplugged" and rec.count() == n_before

        pulse.load_room()
        wait_for(lambda: rec.count() > n_before + 5, 10, "blocks after the device came back")
        assert cap.status().state == "ok"
        first_new = rec.blocks[n_before]
        assert first_new.t == pytest.approx(t_next, abs=1e-9)  # time continues, no jump

        # And it is real audio again, not just blocks.
        played = band_noise(0.6, ROOM_CHANNELS, seed=7)
        wav = tmp_path / "after.wav"
        sf.write(wav, played, ROOM_RATE, subtype="FLOAT")
        n_replug = rec.count() - 3  # a little silence before the sound starts, to align on
        pulse.play(wav)
        time.sleep(0.4)
    finally:
        cap.stop()
    _, score = best_match(rec.raw(n_replug)[:, 1], played[:, 1])
    assert score > 0.9, score
    ts = [b.t for b in rec.blocks]
    assert all(b > a for a, b in itertools.pairwise(ts))
