"""Whisper's decoding rules, independent of the runtime: timestamp tokens, sampling with
temperature, when to fall back to a higher temperature, where to seek after a window, when a
text is implausibly short for the speech it came from, and the previous-text prompt.

These follow the reference implementation (openai/whisper ``decoding.py``/``transcribe.py``);
what differs is said where it does.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # Whisper's fallback schedule
HALLUCINATION_TEMPERATURE = 0.5  # a result only reached above this resets the prompt (as Whisper does)
MAX_INITIAL_TIMESTAMP = 50  # first timestamp at most 1.0 s into a window (Whisper's default)
SECONDS_PER_TIMESTAMP = 0.02
SEEK_MIN_REST_S = 1.0  # continue after the last timestamp when at least this much audio is left
PLAUSIBLE_MIN_SECONDS = 2.0  # shorter utterances are not judged (a "yes" is 0.3 s of text for 1 s)
PREVIOUS_TEXT_TOKENS = 64  # of the previous utterance kept in the prompt (Whisper keeps up to 223)


@dataclass
class Decoded:
    tokens: list[int]  # text tokens only (timestamps removed)
    text: str
    avg_logprob: float
    no_speech_prob: float
    cut_loop: bool = False
    token_logprobs: list[float] = field(default_factory=list)  # one per token in `tokens`
    temperature: float = 0.0
    compression_ratio: float = 0.0
    # seconds of the window that the decode accounted for (its last complete timestamp), or None
    # when decoded without timestamps / the decode ended without one
    consumed_s: float | None = None
    complete: bool = True  # ended by a closing timestamp and end-of-text, not by the token budget
    closed_tokens: int = 0  # text tokens before the last timestamp (the rest is an open segment)
    failed: bool = False  # every temperature failed the quality test: this is the least bad attempt
    attempts: int = 1  # decodes it took (more than one: the fallback was taken)


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / max(1, len(zlib.compress(data))) if data else 0.0


def repeated_tail(tokens: list[int], min_repeats: int = 3, max_period: int = 24) -> int | None:
    """Length to keep when ``tokens`` ends in a loop (a block repeated ``min_repeats``+ times)."""
    n = len(tokens)
    for period in range(1, min(max_period, n // min_repeats) + 1):
        block = tokens[n - period:]
        reps = 1
        while (reps + 1) * period <= n and tokens[n - (reps + 1) * period:n - reps * period] == block:
            reps += 1
        if reps >= min_repeats and (reps * period >= 8 or reps >= 6):
            return n - (reps - 1) * period
    return None


def looping_tail(tokens: list[int], min_period: int = 3) -> int | None:
    """Length to keep when ``tokens`` ends by going round again: a block of ≥ ``min_period``
    tokens followed by at least one whole copy of it (the last copy may be cut short).

    Only for a decode that ran out of its length budget, which speech that ended never does:
    there, two rounds of the same phrase are a loop ("Hi, how are you? Hi, how are you? Hi,"),
    not a speaker repeating themselves.
    """
    n = len(tokens)
    for period in range(min_period, n // 2 + 1):
        run = 0  # length of the suffix where every token equals the one a period earlier
        while run < n - period and tokens[n - 1 - run] == tokens[n - 1 - run - period]:
            run += 1
        if run >= period:
            return n - run  # the loop's first round ends where the repetition starts
    return None


def apply_timestamp_rules(logits: np.ndarray, seq: Sequence[int], ts_begin: int, eot: int,
                          last_timestamp: int) -> None:
    """Whisper's ApplyTimestampRules on ``logits`` (in place) for the sampled ``seq`` so far.

    Timestamps come in pairs (end of one segment, start of the next) and never go back; the
    first token is a timestamp ≤ 1 s; a timestamp is forced when their total probability beats
    every text token. ``last_timestamp`` bounds them by the audio actually encoded (Whisper's
    window is always 30 s; ours is the utterance's real length).
    """
    logits[ts_begin + last_timestamp + 1:] = -np.inf
    last_ts = len(seq) >= 1 and seq[-1] >= ts_begin
    penultimate_ts = len(seq) < 2 or seq[-2] >= ts_begin
    if last_ts:
        if penultimate_ts:
            logits[ts_begin:] = -np.inf  # after a pair: text (or end) comes next
        else:
            logits[:eot] = -np.inf  # a segment's end timestamp: another timestamp or the end
    stamps = [t for t in seq if t >= ts_begin]
    if stamps:
        floor = stamps[-1] if last_ts and not penultimate_ts else stamps[-1] + 1
        logits[ts_begin:floor] = -np.inf
    if not seq:
        logits[:ts_begin] = -np.inf
        logits[ts_begin + MAX_INITIAL_TIMESTAMP + 1:] = -np.inf
    finite = logits[np.isfinite(logits)]
    if finite.size == 0:
        logits[eot] = 0.0  # nothing allowed is left: end the window
        return
    m = float(finite.max())
    log_total = m + math.log(float(np.exp(finite - m).sum()))
    ts_part = logits[ts_begin:]
    ts_finite = ts_part[np.isfinite(ts_part)]
    if ts_finite.size:
        tm = float(ts_finite.max())
        ts_logprob = tm + math.log(float(np.exp(ts_finite - tm).sum())) - log_total
        if ts_logprob > float(np.max(logits[:ts_begin])) - log_total:
            logits[:ts_begin] = -np.inf


def pick(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> tuple[int, float]:
    """The next token (argmax at temperature 0, else sampled) and its log-probability."""
    if temperature <= 0.0:
        tok = int(np.argmax(logits))
    else:
        z = logits / temperature
        z = np.exp(z - z.max())
        tok = int(rng.choice(z.size, p=z / z.sum()))
    m = float(logits.max())
    return tok, float(logits[tok] - m - math.log(float(np.exp(logits - m).sum())))


def window_end(seq: Sequence[int], ts_begin: int) -> tuple[float | None, bool]:
    """(seconds accounted for, whether the last segment was closed) of a timestamped ``seq``.

    Closed: the sequence ends with a timestamp, so everything up to it was transcribed.
    Open: text after the last timestamp was cut by the token budget; the window is
    accounted for only up to that timestamp (the open text is decoded again from there).
    """
    stamps = [i for i, t in enumerate(seq) if t >= ts_begin]
    if not stamps:
        return None, False
    last = stamps[-1]
    return (seq[last] - ts_begin) * SECONDS_PER_TIMESTAMP, last == len(seq) - 1


def needs_fallback(r: Decoded, cr_threshold: float, logprob_threshold: float, no_speech_threshold: float) -> bool:
    """Whisper's test of a decode: too repetitive, or too unlikely unless the audio is silence."""
    if r.cut_loop or r.compression_ratio > cr_threshold:
        return True
    silent = r.no_speech_prob > no_speech_threshold
    return r.avg_logprob < logprob_threshold and not silent


def best_of(attempts: Sequence[Decoded], cr_threshold: float) -> Decoded:
    """When every temperature failed: the likeliest attempt that is not a loop (faster-whisper's
    choice), else the first (greedy, its loop already cut)."""
    ok = [a for a in attempts if not a.cut_loop and a.compression_ratio <= cr_threshold and a.text]
    best = max(ok, key=lambda a: a.avg_logprob) if ok else attempts[0]
    best.failed, best.attempts = True, len(attempts)
    return best


def implausibly_short(text: str, seconds: float, min_chars_per_s: float) -> bool:
    """True when ``seconds`` of speech the VAD found produced far too little text.

    Read and conversational speech run at 10–16 characters a second; a decode that stopped
    early ("What's going on?" for 14 s) is well under the threshold. The VAD's padding
    (≤ 1 s) is not counted as speech."""
    speech_s = seconds - 1.0
    if seconds < PLAUSIBLE_MIN_SECONDS or min_chars_per_s <= 0:
        return False
    return len(" ".join(text.split())) < min_chars_per_s * speech_s


def quiet_splits(audio: np.ndarray, rate: int, target_s: float = 5.0, search_s: float = 1.0) -> list[int]:
    """Cut points (sample indices) about every ``target_s``, each at the quietest 50 ms within
    ``search_s`` of it, so a re-decode never cuts a word in half where it can avoid it."""
    hop = rate // 20
    n = audio.size // hop
    if n == 0:
        return []
    energy = np.sqrt(np.mean(audio[: n * hop].reshape(n, hop) ** 2, axis=1))
    pieces = max(1, round(audio.size / rate / target_s))
    cuts = []
    for k in range(1, pieces):
        centre = int(k * n / pieces)
        lo, hi = max(1, centre - int(search_s * 20)), min(n - 1, centre + int(search_s * 20))
        cuts.append((lo + int(np.argmin(energy[lo:hi]))) * hop if hi > lo else centre * hop)
    return cuts


class PromptHistory:
    """The previous utterance's text for the next one's prompt (Whisper's
    condition_on_previous_text), forgotten after a silence, a hallucination or a new visit."""

    def __init__(self, reset_after_s: float) -> None:
        self.reset_after_s = reset_after_s
        self.tokens: list[int] = []
        self.end_s: float | None = None
        self.resets = 0

    def reset(self) -> None:
        if self.tokens:
            self.resets += 1
        self.tokens, self.end_s = [], None

    def for_start(self, start_s: float | None) -> list[int]:
        """Previous text tokens for an utterance starting at ``start_s`` (none if unknown)."""
        if start_s is None or self.end_s is None:
            return []
        if not -1.0 <= start_s - self.end_s <= self.reset_after_s:  # a long silence, or another recording
            self.reset()
            return []
        return self.tokens

    def remember(self, tokens: Sequence[int], end_s: float, hallucinated: bool) -> None:
        if hallucinated or not tokens:
            self.reset()
            return
        self.tokens, self.end_s = list(tokens[-PREVIOUS_TEXT_TOKENS:]), end_s


def word_confidences(token_bytes: Sequence[bytes], logprobs: Sequence[float], text: str) -> tuple[float, ...] | None:
    """One confidence per word of ``text``: exp of the lowest log-probability among the word's
    tokens (a word is as doubtful as its weakest piece). A token starting with whitespace starts a
    word. None when the tokens do not spell exactly ``text``'s words (nothing is guessed)."""
    if len(token_bytes) != len(logprobs):
        return None
    words: list[tuple[bytes, float]] = []
    for piece, logprob in zip(token_bytes, logprobs, strict=True):
        if not words or piece[:1].isspace():
            words.append((piece, logprob))
        else:
            joined, lowest = words[-1]
            words[-1] = (joined + piece, min(lowest, logprob))
    spelled = [(w.decode("utf-8", errors="replace").strip(), lp) for w, lp in words]
    spelled = [(w, lp) for w, lp in spelled if w]
    if [w for w, _ in spelled] != text.split():
        return None
    return tuple(round(math.exp(min(0.0, lp)), 3) for _, lp in spelled)
