"""The array front end on simulated reverberant rooms: the MVDR beam raises the talker over a
noise source, WPE shortens the reverberant tail, the RAM ring keeps the timeline, and devices
without a usable array keep the mono mix."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from appliance.diarize.direction import DirectionFinder
from appliance.frontend import ArrayFrontEnd, build_frontend, mvdr
from appliance.frontend.frontend import noise_frames
from appliance.frontend.ring import ChannelRing
from appliance.frontend.stft import istft, stft
from appliance.frontend.wpe import wpe
from appliance.hardware.arrays import RESPEAKER_2MIC_HAT, RESPEAKER_USB_4MIC_V2
from tests.frontend_rooms import room_images, snr_db
from tests.speech import RATE, espeak, trimmed

SENTENCES = ("The patient reports a dry cough for two weeks and a mild fever at night. "
             "She takes ibuprofen twice a day and sleeps poorly.")
TALKER_AZ, NOISE_AZ = 60.0, 200.0
LEAD_S = 1.5  # noise alone before the talker starts: what the noise covariance is learnt from
OTHER = ("When the sunlight strikes raindrops in the air, they act as a prism and form a rainbow.",
         "The rainbow is a division of white light into many beautiful colours.",
         "These take the shape of a long round arch, with its path high above.")


@pytest.fixture(scope="module")
def noisy_room() -> dict[str, np.ndarray]:
    """A talker at 60 degrees and, 3 dB quieter, another voice at 200 degrees talking throughout
    (someone on the phone in the room), RT60 0.35 s, a little microphone noise."""
    speech = espeak(SENTENCES)
    lead = int(LEAD_S * RATE)
    dry = np.concatenate([np.zeros(lead, np.float32), speech, np.zeros(RATE // 2, np.float32)])
    other = np.resize(np.concatenate([trimmed(t, voice="en+f3") for t in OTHER]), dry.size)
    talker, interferer = room_images([(dry, TALKER_AZ, 1.3), (other, NOISE_AZ, 1.5)], rt60=0.35)
    interferer *= 0.7 * np.sqrt(np.mean(talker[lead:lead + speech.size] ** 2) / np.mean(interferer ** 2))
    sensor = np.random.default_rng(2).normal(0, 1e-4, talker.shape).astype(np.float32)
    return {"talker": talker, "noise": interferer + sensor, "lead": np.array(lead)}


def test_stft_and_istft_give_back_the_signal():
    x = np.random.default_rng(0).normal(0, 0.1, (5000, 3)).astype(np.float32)
    for n_fft, hop in ((512, 256), (512, 128)):
        spec = stft(x, n_fft, hop)
        assert spec.shape[:2] == (n_fft // 2 + 1, 3)
        back = np.stack([istft(spec[:, m], n_fft, hop, len(x)) for m in range(3)], axis=1)
        assert np.max(np.abs(back - x)) < 1e-4


@pytest.mark.slow
def test_mvdr_beam_raises_the_talker_over_a_noise_source(noisy_room):
    talker, noise, lead = noisy_room["talker"], noisy_room["noise"], int(noisy_room["lead"])
    mix = talker + noise
    # steered where the device's SRP-PHAT estimate says the talker is, as on the device
    finder = DirectionFinder(RESPEAKER_USB_4MIC_V2, RATE)
    spectra, frames, _ = finder.pair_spectra(mix[lead:])
    found = finder.from_spectra(spectra, frames)
    assert found is not None and abs((found.azimuth_deg - TALKER_AZ + 180) % 360 - 180) < 20

    front = ArrayFrontEnd("mvdr")
    s = front.settings
    spec = stft(mix, s.n_fft, s.hop)
    cov = mvdr.covariance(spec, noise_frames(spec, lead, s.n_fft, s.hop))
    freqs = np.fft.rfftfreq(s.n_fft, 1 / RATE)
    w = mvdr.weights(cov, mvdr.steering(np.asarray(RESPEAKER_USB_4MIC_V2.positions_m), found.azimuth_deg, freqs),
                     s.loading)

    def beam(x: np.ndarray) -> np.ndarray:  # the weights are fixed by the mixture; the beam is linear
        return istft(mvdr.apply(w, stft(x, s.n_fft, s.hop)), s.n_fft, s.hop, len(x))[lead:]

    before = snr_db(talker[lead:].mean(axis=1), noise[lead:].mean(axis=1))
    after = snr_db(beam(talker), beam(noise))
    assert after > before + 3.0, (before, after)

    # the whole front end (ring, SRP-PHAT of its own, beam) gives the same as the pieces
    front.set_array(RESPEAKER_USB_4MIC_V2)
    feed_blocks(front, mix, RATE)
    out = front.enhance(LEAD_S, mix.shape[0] / RATE)
    assert out is not None and out.size == mix.shape[0] - lead
    reference = beam(mix)
    assert np.corrcoef(out, reference)[0, 1] > 0.99


def feed_blocks(front: ArrayFrontEnd, mics: np.ndarray, rate: int, t0: float = 0.0, block_s: float = 0.032) -> None:
    """Capture blocks of a 4-channel recording, as the ReSpeaker's 6-channel firmware delivers them."""
    raw = np.zeros((len(mics), RESPEAKER_USB_4MIC_V2.channels), np.float32)
    raw[:, list(RESPEAKER_USB_4MIC_V2.raw_channels)] = mics
    step = int(block_s * rate)
    for i in range(0, len(raw), step):
        front.feed(raw[i:i + step], rate, t0 + i / rate)


def test_a_48khz_array_is_resampled_on_the_capture_timeline(noisy_room):
    mix = noisy_room["talker"] + noisy_room["noise"]
    at16 = ArrayFrontEnd("mvdr")
    at16.set_array(RESPEAKER_USB_4MIC_V2)
    feed_blocks(at16, mix, RATE, t0=100.0)
    at48 = ArrayFrontEnd("mvdr")
    at48.set_array(RESPEAKER_USB_4MIC_V2)
    feed_blocks(at48, resample_poly(mix, 3, 1, axis=0).astype(np.float32), 48000, t0=100.0)
    a, b = at16.enhance(101.5, 104.0), at48.enhance(101.5, 104.0)
    assert a is not None and b is not None and a.size == b.size == int(2.5 * RATE)
    assert np.corrcoef(a, b)[0, 1] > 0.98


@pytest.mark.slow
def test_wpe_shortens_the_reverberant_tail():
    speech = trimmed(SENTENCES)
    dry = np.concatenate([speech, np.zeros(RATE, np.float32)])
    (wet,) = room_images([(dry, 120.0, 1.5)], rt60=0.6)
    spec = stft(wet, 512, 256)
    clean = wpe(spec, taps=10, delay=3, iterations=2)
    out = np.stack([istft(clean[:, m], 512, 256, len(wet)) for m in range(4)], axis=1)

    end = speech.size + int(0.05 * RATE)  # the talker has stopped; what is left is the room
    def tail_db(x: np.ndarray) -> float:  # late reverberant energy relative to the speech
        return 10 * np.log10(np.sum(x[end:end + int(0.4 * RATE)] ** 2) / np.sum(x[:speech.size] ** 2))

    before, after = tail_db(wet), tail_db(out)
    assert after < before - 5.0, (before, after)
    # and the speech itself is kept: the dereverberated signal still follows the reverberant one
    assert np.corrcoef(out[:speech.size, 0], wet[:speech.size, 0])[0, 1] > 0.8


def test_the_ring_keeps_the_last_seconds_on_the_timeline():
    ring = ChannelRing(2, keep_s=1.0, rate=100)
    x = np.stack([np.arange(250), -np.arange(250)], axis=1).astype(np.float32)
    for i in range(0, 250, 30):
        ring.write(x[i:i + 30], 5.0 + i / 100)
    got = ring.read(6.6, 7.0)
    assert got is not None and got[1] == pytest.approx(6.6) and list(got[0][:, 0]) == list(range(160, 200))
    old = ring.read(5.0, 6.6)  # only the last second is held: the part before it is gone
    assert old is not None and old[1] == pytest.approx(6.5) and old[0][0, 0] == 150
    assert ring.read(2.0, 5.0) is None
    ring.write(x[:10], 20.0)  # a jump (pause and resume): the stretch before it is forgotten
    assert ring.read(6.0, 7.5) is None and ring.read(20.0, 20.1)[0][:, 0].tolist() == list(range(10))


def test_utterances_the_ring_no_longer_holds_fall_back_to_the_mix(noisy_room):
    mix = noisy_room["talker"] + noisy_room["noise"]
    front = ArrayFrontEnd("wpe+mvdr", keep_s=2.0)
    front.set_array(RESPEAKER_USB_4MIC_V2)
    feed_blocks(front, mix, RATE)
    end = mix.shape[0] / RATE
    assert front.enhance(0.5, 2.0) is None  # overwritten long ago
    assert front.enhance(end - 1.5, end) is not None
    assert (front.stats.fallbacks, front.stats.enhanced) == (1, 1) and front.stats.cpu_per_audio_s > 0


def test_mono_and_two_mic_devices_keep_the_mono_mix():
    assert build_frontend("none", 30.0) is None
    x = np.random.default_rng(1).normal(0, 0.1, (RATE * 2, 2)).astype(np.float32)
    for array in (None, RESPEAKER_2MIC_HAT):
        front = ArrayFrontEnd("mvdr")
        front.set_array(array)
        front.feed(x, RATE, 0.0)
        assert not front.active and front.enhance(0.5, 1.5) is None
    front = ArrayFrontEnd("mvdr")  # a 4-mic geometry but a stream without its raw channels
    front.set_array(RESPEAKER_USB_4MIC_V2)
    front.feed(x[:, :1], RATE, 0.0)
    assert front.enhance(0.5, 1.5) is None
    with pytest.raises(ValueError, match="front end"):
        ArrayFrontEnd("beamform")
