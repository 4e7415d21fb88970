"""A final text for a whole utterance, losing nothing the VAD heard as speech.

- Windows of ≤ 30 s decoded with timestamp tokens; when a decode ends before the audio does,
  the next window starts at its last timestamp (Whisper's seek) instead of dropping the rest.
- Each window at temperature 0 first, then 0.2 … 1.0 while the compression ratio or the mean
  log-probability says the result is bad (Whisper's fallback) instead of keeping a cut loop.
- A check the decoder's own output cannot fool: when the text is implausibly short for the
  seconds of speech the VAD found, the utterance is decoded again in ~5 s pieces cut at
  pauses (each with its own level normalisation, so a quiet far talker after a loud near one
  is heard); the longer credible text wins. Every such event is logged and counted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort

from appliance.asr.whisper.decoding import (
    HALLUCINATION_TEMPERATURE,
    SEEK_MIN_REST_S,
    TEMPERATURES,
    Decoded,
    best_of,
    compression_ratio,
    implausibly_short,
    looping_tail,
    needs_fallback,
    quiet_splits,
)
from appliance.asr.whisper.features import SAMPLE_RATE

if TYPE_CHECKING:
    from appliance.asr.whisper.runtime import WhisperOnnx

log = logging.getLogger(__name__)

WINDOW = 30 * SAMPLE_RATE
MIN_ADVANCE_S = 0.5  # a seek that moves less than this would decode the same audio again


def decode_with_fallback(engine: WhisperOnnx, audio: np.ndarray, previous: Sequence[int],
                         run_options: ort.RunOptions | None) -> Decoded:
    """One window, greedy first, hotter while the result fails Whisper's quality test."""
    cfg = engine.cfg
    attempts: list[Decoded] = []
    # Greedy with timestamps, then greedy without them, then sampling. The second is not Whisper's:
    # on an utterance encoded at its real length (not a padded 30 s window), tiny.en sometimes
    # never closes a short one with a timestamp and goes round again ("10 of clubs. 10 of
    # clubs."), where the plain greedy decode ends cleanly (pocketsphinx cards).
    plan = [(0.0, True), (0.0, False), *((t, True) for t in TEMPERATURES[1:])]
    for i, (temperature, timestamps) in enumerate(plan):
        # Whisper drops the previous-text prompt once sampling: a bad prompt may be the cause.
        prompt = engine.full_prompt(previous if temperature <= HALLUCINATION_TEMPERATURE else ())
        r = engine.decode(audio, None, run_options, prompt=prompt, temperature=temperature, timestamps=timestamps,
                          seed=i)
        attempts.append(r)
        if not needs_fallback(r, cfg.compression_ratio_threshold, cfg.logprob_threshold, cfg.no_speech_threshold):
            r.attempts = len(attempts)
            return r
    return best_of(attempts, cfg.compression_ratio_threshold)


def _join(pieces: Sequence[Decoded], engine: WhisperOnnx) -> Decoded:
    if len(pieces) == 1:
        return pieces[0]
    tokens = [t for p in pieces for t in p.tokens]
    logprobs = [lp for p in pieces for lp in p.token_logprobs]
    weights = [max(1, len(p.tokens)) for p in pieces]
    avg = float(np.average([p.avg_logprob for p in pieces], weights=weights))
    return Decoded(tokens, engine.tokenizer.decode(tokens).strip(), avg, pieces[0].no_speech_prob,
                   any(p.cut_loop for p in pieces), logprobs, max(p.temperature for p in pieces),
                   failed=any(p.failed for p in pieces))


def _trim_open_segment(engine: WhisperOnnx, r: Decoded) -> Decoded:
    """Drop the text after the last timestamp of a decode that is continued from that timestamp
    (the next window decodes it again, whole)."""
    if r.complete or r.closed_tokens >= len(r.tokens):
        return r
    keep = r.closed_tokens
    tokens = r.tokens[:keep]
    return Decoded(tokens, engine.tokenizer.decode(tokens).strip(), r.avg_logprob, r.no_speech_prob, r.cut_loop,
                   r.token_logprobs[:keep], r.temperature, r.compression_ratio, r.consumed_s, True, keep, r.failed)


def _credible(engine: WhisperOnnx, r: Decoded) -> bool:
    """Stricter than the no-speech rule: a second opinion may add text only when the decoder
    was sure of it (likely, found at a low temperature, no loop and no repeated phrase)."""
    cfg = engine.cfg
    return (bool(r.tokens) and not engine.is_silent(r) and r.avg_logprob >= cfg.logprob_threshold
            and r.no_speech_prob <= cfg.no_speech_threshold and r.temperature <= HALLUCINATION_TEMPERATURE
            and not r.failed
            and not r.cut_loop and compression_ratio(r.text) <= cfg.compression_ratio_threshold
            and looping_tail(r.tokens) is None)


def seek_decode(engine: WhisperOnnx, audio: np.ndarray, previous: Sequence[int],
                run_options: ort.RunOptions | None, events: list[str]) -> Decoded:
    """Windows from the start of ``audio`` to its end, each starting where the last one's
    timestamps stopped."""
    pieces: list[Decoded] = []
    offset = 0
    prev = list(previous)
    for _ in range(2 + audio.size // (SAMPLE_RATE // 2)):  # bounded: each window advances ≥ 0.5 s
        window = audio[offset: offset + WINDOW]
        r = decode_with_fallback(engine, window, prev, run_options)
        rest_s = (audio.size - offset) / SAMPLE_RATE
        consumed = window.size / SAMPLE_RATE if r.consumed_s is None else r.consumed_s
        more = rest_s - consumed >= SEEK_MIN_REST_S and consumed >= MIN_ADVANCE_S
        if more and not r.complete:
            r = _trim_open_segment(engine, r)
        if offset > 0 and engine.is_silent(r):
            r = Decoded([], "", r.avg_logprob, r.no_speech_prob)  # a continuation into silence adds nothing
        pieces.append(r)
        if r.attempts > 1:
            events.append("fallback")
        if r.failed or r.temperature > HALLUCINATION_TEMPERATURE or r.cut_loop:
            events.append("hallucination")
        if not more:
            break
        offset += int(consumed * SAMPLE_RATE)
        events.append("seek")
        log.info("decode ended at %.1f s of %.1f s: continuing from there", offset / SAMPLE_RATE,
                 audio.size / SAMPLE_RATE)
        prev = [] if r.failed or r.temperature > HALLUCINATION_TEMPERATURE else [*prev, *r.tokens][-64:]
    spoken = [p for p in pieces if p.tokens] or pieces[:1]
    return _join(spoken, engine)


def transcribe_utterance(engine: WhisperOnnx, audio: np.ndarray, previous: Sequence[int],
                         run_options: ort.RunOptions | None = None) -> tuple[Decoded, tuple[str, ...]]:
    """The final decode of one utterance and what it took ("seek", "fallback", "hallucination",
    "short", "short-recovered")."""
    events: list[str] = []
    r = seek_decode(engine, audio, previous, run_options, events)
    seconds = audio.size / SAMPLE_RATE
    stored = "" if engine.is_silent(r) else r.text  # judged by what would be stored, "no speech" included
    if implausibly_short(stored, seconds, engine.cfg.implausible_chars_per_s):
        events.append("short")
        pieces = np.split(audio, quiet_splits(audio, SAMPLE_RATE))
        again = [seek_decode(engine, p, (), run_options, []) for p in pieces]
        again = [p for p in again if _credible(engine, p)]
        alt = _join(again, engine) if again else None
        recovered = alt is not None and len(alt.text) > len(stored) and not alt.cut_loop
        log.warning("implausibly short text for %.1f s of speech (%d characters: %r); decoded again in %d "
                    "pieces: %s", seconds, len(stored), stored[:60], len(pieces),
                    f"{len(alt.text)} characters kept" if recovered and alt else "no better, first text kept")
        if recovered and alt is not None:
            events.append("short-recovered")
            r = alt
    return r, tuple(events)
