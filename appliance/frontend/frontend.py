"""The array front end: per utterance, WPE dereverberation and an MVDR beam at the talker.

Fed every capture block (the raw microphone channels, resampled to 16 kHz into a bounded RAM
ring); asked, once the VAD has closed an utterance, for the enhanced mono audio of [start, end]:

1. the microphones' audio from ``noise_s`` before the utterance to its end, from the ring;
2. one STFT (512-point, 32 ms frames at 16 kHz);
3. WPE (``wpe+mvdr``): late reverberation predicted from earlier frames and subtracted;
4. MVDR steered at the utterance's azimuth (the direction tracker's SRP-PHAT estimate, or the
   same estimate computed here from the ring), with the noise covariance of the quieter frames
   before the utterance, diagonally loaded;
5. the inverse STFT, cut to the utterance.

Anything it cannot do (no array, fewer than three microphones, the utterance already gone from
the ring, no direction) gives None, and the caller keeps the mono mix.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from appliance.capture.dsp import ASR_RATE, StreamResampler
from appliance.diarize.direction import Direction, finder_for
from appliance.frontend import mvdr
from appliance.frontend.ring import ChannelRing
from appliance.frontend.stft import istft, stft
from appliance.frontend.wpe import wpe
from appliance.hardware.arrays import MicArray

log = logging.getLogger(__name__)

MODES = ("none", "mvdr", "wpe+mvdr")
MIN_MICS = 3  # a line of two cannot tell a talker from their mirror image, nor null much: keep the mix
MIN_NOISE_FRAMES = 8  # fewer frames before the utterance (visit start): take the utterance's quietest


@dataclass
class FrontEndStats:
    enhanced: int = 0  # utterances the recogniser got the beam of
    fallbacks: int = 0  # utterances it got the mono mix of (no array, audio gone, no direction)
    audio_s: float = 0.0  # seconds of utterance enhanced
    cpu_s: float = 0.0  # this thread's CPU time spent on it

    @property
    def cpu_per_audio_s(self) -> float:
        return self.cpu_s / self.audio_s if self.audio_s else 0.0


@dataclass(frozen=True)
class FrontEndSettings:
    n_fft: int = 512
    hop: int = 256
    taps: int = 10  # WPE prediction order, frames
    delay: int = 3  # WPE: frames of direct sound and early reflections left alone
    iterations: int = 2
    loading: float = 0.05  # MVDR diagonal loading, fraction of the mean microphone power
    noise_s: float = 1.0  # audio before the utterance kept for the noise covariance


class ArrayFrontEnd:
    def __init__(self, mode: str, *, keep_s: float = 30.0, settings: FrontEndSettings | None = None) -> None:
        if mode not in MODES[1:]:
            raise ValueError(f"front end {mode!r}: expected one of {', '.join(MODES[1:])}")
        self.mode = mode
        self.settings = settings or FrontEndSettings()
        self.keep_s = keep_s
        self.stats = FrontEndStats()
        self._array: MicArray | None = None
        self._mics: tuple[int, ...] = ()
        self._ring: ChannelRing | None = None
        self._resamplers: list[StreamResampler] = []
        self._rate = 0
        self._lock = threading.Lock()  # set_array (control) against feed (capture)

    # -- capture side ----------------------------------------------------------------
    def set_array(self, array: MicArray | None) -> None:
        """The capture's microphone array (None: none known; the front end stays off)."""
        with self._lock:
            self._array = array if array is not None and len(array.positions_m) >= MIN_MICS else None
            self._ring, self._rate, self._mics = None, 0, ()

    @property
    def active(self) -> bool:
        return self._array is not None

    def describe(self) -> str:
        """What the recogniser hears, for the log."""
        if self._array is None:
            return f"the mono mix ({self.mode} needs a known array of {MIN_MICS}+ raw microphones)"
        return f"the {self.mode} beam of {self._array.name}"

    def feed(self, raw: np.ndarray, rate: int, t: float) -> None:
        """A capture block: ``raw`` (n, device channels) at ``rate``, starting at timeline ``t``."""
        with self._lock:
            array = self._array
            if array is None or raw.ndim != 2:
                return
            if rate != self._rate or self._ring is None:
                mics = array.channel_map(raw.shape[1])
                if mics is None:
                    return  # a processed-only stream: no raw microphones to steer
                self._mics, self._rate = mics, rate
                self._resamplers = [StreamResampler(rate) for _ in mics]
                self._ring = ChannelRing(len(mics), self.keep_s + self.settings.noise_s, ASR_RATE)
            cols = [r.process(raw[:, m]) for r, m in zip(self._resamplers, self._mics, strict=True)]
            n = min(len(c) for c in cols)
            self._ring.write(np.stack([c[:n] for c in cols], axis=1), t)

    def reset(self) -> None:
        with self._lock:
            if self._ring is not None:
                self._ring.clear()
            for r in self._resamplers:
                r.reset()

    # -- recognition side ------------------------------------------------------------
    def enhance(self, start: float, end: float, direction: Direction | None = None) -> np.ndarray | None:
        """16 kHz mono audio of [start, end] from the beam, or None (keep the mono mix)."""
        began = time.thread_time()
        out = self._enhance(start, end, direction)
        if out is None:
            self.stats.fallbacks += 1
        else:
            self.stats.enhanced += 1
            self.stats.audio_s += end - start
            self.stats.cpu_s += time.thread_time() - began
        return out

    def _enhance(self, start: float, end: float, direction: Direction | None) -> np.ndarray | None:
        ring, array = self._ring, self._array
        if ring is None or array is None:
            return None
        got = ring.read(start - self.settings.noise_s, end)
        if got is None:
            return None
        mics, first_t = got
        pre = round((start - first_t) * ASR_RATE)
        length = round((end - start) * ASR_RATE)
        if pre < -ASR_RATE // 100:
            log.warning("front end: the utterance at %.1f s is no longer in RAM; using the mono mix", start)
            return None  # recognition fell more than the ring behind
        pre = max(pre, 0)
        if direction is None:
            direction = self._direction(array, mics[pre:])
        if direction is None:
            return None
        beam = self.beam(mics, pre, array, direction.azimuth_deg)
        out = beam[pre:pre + length]
        return np.pad(out, (0, length - len(out))) if len(out) < length else out

    @staticmethod
    def _direction(array: MicArray, mics: np.ndarray) -> Direction | None:
        finder = finder_for(array, ASR_RATE)
        spectra, frames, _ = finder.pair_spectra(mics)
        return finder.from_spectra(spectra, frames)

    def beam(self, mics: np.ndarray, pre: int, array: MicArray, azimuth_deg: float) -> np.ndarray:
        """Enhanced mono of ``mics`` (samples, mics at 16 kHz), whose first ``pre`` samples precede the speech."""
        s = self.settings
        spec = stft(mics, s.n_fft, s.hop)
        if self.mode == "wpe+mvdr":
            spec = wpe(spec, taps=s.taps, delay=s.delay, iterations=s.iterations)
        cov = mvdr.covariance(spec, noise_frames(spec, pre, s.n_fft, s.hop))
        freqs = np.fft.rfftfreq(s.n_fft, 1 / ASR_RATE)
        w = mvdr.weights(cov, mvdr.steering(np.asarray(array.positions_m), azimuth_deg, freqs), s.loading)
        return istft(mvdr.apply(w, spec), s.n_fft, s.hop, len(mics))


def noise_frames(spec: np.ndarray, pre: int, n_fft: int, hop: int) -> np.ndarray:
    """Frames for the noise covariance: the quieter half of those wholly before the speech, or at
    the start of a visit (too few of them) the quietest fifth of all."""
    energy = np.sum(spec.real ** 2 + spec.imag ** 2, axis=(0, 1))
    before = np.arange(max(0, (pre - hop) // hop + 1))  # frame k ends at sample k*hop + hop (stft's padding)
    before = before[before < len(energy)]
    if len(before) >= MIN_NOISE_FRAMES:
        return before[energy[before] <= np.median(energy[before])]
    quiet = np.argsort(energy)[:max(MIN_NOISE_FRAMES, len(energy) // 5)]
    return np.sort(quiet)


def build_frontend(mode: str, keep_s: float) -> ArrayFrontEnd | None:
    """`capture.frontend` as an object for the speech pipeline; None for "none"."""
    return None if mode == "none" else ArrayFrontEnd(mode, keep_s=keep_s)


def paced(feed: Callable[[Any], None], queued_s: Callable[[], float]) -> Callable[[Any], None]:
    """``feed`` that waits while speech waits for recognition: a file replayed as fast as possible
    would otherwise overwrite utterances in the ring before their turn."""
    def paced_feed(block: Any) -> None:
        feed(block)
        while queued_s() > 0:
            time.sleep(0.005)
    return paced_feed
