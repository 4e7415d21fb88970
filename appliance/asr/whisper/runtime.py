"""Whisper on ONNX Runtime with our own decoder: the appliance's default recogniser.

Per utterance: log-mel of the real length plus a short silent tail (never padded to 30 s)
→ encoder → cross K/V kept as ONNX Runtime values → decoder steps through I/O binding. The self-attention K/V live in
buffers preallocated once; each step reads a contiguous prefix of them and the decoder
writes its new rows straight into the next slots, so nothing is copied per token.

Guards against Whisper's failure modes: no-speech probability with mean log-probability
(silence, noise), repetition loops cut early and by compression ratio, a token budget
bounded by the audio's length. A final text is decoded by ``longform.transcribe_utterance``
(timestamps, seek, temperature fallback, the implausibly-short check); partials are one
greedy pass.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from appliance.asr.buffered import BufferedStream
from appliance.asr.engine import Cancelled, Recognition, RecognizerStream
from appliance.asr.registry import engine_abilities
from appliance.asr.sessions import cpu_session, find_graph
from appliance.asr.vocabulary import load_vocabulary
from appliance.asr.whisper.decoding import (
    Decoded,
    PromptHistory,
    apply_timestamp_rules,
    compression_ratio,
    looping_tail,
    pick,
    repeated_tail,
    window_end,
    word_confidences,
)
from appliance.asr.whisper.features import HOP, SAMPLE_RATE, log_mel
from appliance.asr.whisper.longform import transcribe_utterance
from appliance.asr.whisper.tokenizer import WhisperTokenizer
from appliance.config.schema import AsrConfig

log = logging.getLogger(__name__)

MAX_PROMPT_TOKENS = 96  # vocabulary prompt bound: longer prompts slow the first step and bias more
TOKENS_PER_SECOND = 8.0  # fast speech is ~5 tokens/s; numbers and names take more
MIN_SECONDS = 0.1  # shorter audio cannot hold a word
# Zero feature frames appended after the audio. Whisper was trained on 30 s windows; a
# short utterance encoded at its bare length often loses its end or is repeated. Measured
# (benchmarks.asr data, per utterance, Silero VAD): no tail → 3 s: WER 12.7 → 7.0 % on LibriVox
# sentences; 3 s → 5 s for utterances under 5 s and ≥ 2 s for long ones: LibriVox 7.0 → 4.2 %,
# cards 28.6 → 19.0 %, espeak-ng visits 29.5 → 27.4 % for ~8 % more encoder time. Padding to
# the full 30 s was worse (LibriVox 5.6 %) at 3–6× the encoder time.
TAIL_FRAMES = (200, 500)  # (min, max): up to 5 s for short utterances, 2 s from ~8 s on
SHORT_FRAMES = 1000


class WhisperOnnx:
    """The Engine (and Transcriber) for a model directory written by ``export_whisper``."""

    abilities = engine_abilities("whisper-onnx")  # offline: the pipeline may start the final decode early

    def __init__(self, model_dir: Path, cfg: AsrConfig) -> None:
        model_dir = Path(model_dir)
        self.cfg = cfg
        self.name = f"whisper-onnx:{model_dir.name}"
        fix = "export it with export_whisper"
        self._enc = cpu_session(find_graph(model_dir, "encoder", fix), cfg.threads)
        self._dec = cpu_session(find_graph(model_dir, "decoder", fix), cfg.threads)
        meta = self._enc.get_modelmeta().custom_metadata_map
        if meta.get("layout") != "fast":
            raise ValueError(f"{model_dir}: encoder is not in the fast layout (re-export the model)")
        self.tokenizer = WhisperTokenizer(model_dir / "tokenizer.json")

        def num(key: str) -> int:
            return int(meta[key])

        self.n_mels, self.n_ctx, self.n_state = num("n_mels"), num("n_text_ctx"), num("n_text_state")
        self.n_layer, self.n_vocab = num("n_text_layer"), num("n_vocab")
        self.sot, self.eot, self.no_speech_id = num("sot"), num("eot"), num("no_speech")
        self.no_timestamps, self.sot_prev = num("no_timestamps"), num("sot_prev")
        self.sot_sequence = [int(t) for t in meta["sot_sequence"].split(",")]
        if self.tokenizer.is_multilingual:  # language from the config, task transcribe
            lang = self.tokenizer.specials.language.get(cfg.language, self.tokenizer.specials.language["en"])
            self.sot_sequence = [self.sot, lang, self.tokenizer.specials.transcribe]

        # Suppression as additive biases: specials and timestamps never, blank/EOT not first.
        bias = np.zeros(self.n_vocab, np.float32)
        bias[[int(t) for t in meta.get("suppress_ids", "").split(",") if t]] = -np.inf
        bias[self.eot + 1:] = -np.inf
        bias[self.eot] = 0.0
        self._bias = bias
        self._bias_begin = bias.copy()
        self._bias_begin[[int(t) for t in meta.get("suppress_ids_begin", "").split(",") if t]] = -np.inf

        self.vocabulary = load_vocabulary(cfg)
        self.prompt = self._prompt_tokens(self.vocabulary)
        self.history = PromptHistory(cfg.prompt_reset_s)
        self._enc_outputs = [o.name for o in self._enc.get_outputs()]
        # Self-attention K/V for the longest sequence, allocated once and reused by every utterance.
        shape = (1, self.n_ctx, self.n_state)
        self._k = [np.zeros(shape, np.float32) for _ in range(self.n_layer)]
        self._v = [np.zeros(shape, np.float32) for _ in range(self.n_layer)]
        self._logits = np.zeros((1, self.n_vocab), np.float32)
        self._lock = threading.Lock()

    def twin(self) -> WhisperOnnx:
        """A second decoder over the same loaded model, for another thread (the refined pass): the
        ONNX Runtime sessions, tokenizer and biases are shared (read-only; a session may run on two
        threads at once), the decoding buffers, lock and previous-text history are its own."""
        other = copy.copy(self)
        other.history = PromptHistory(self.cfg.prompt_reset_s)
        other._k = [np.zeros_like(k) for k in self._k]
        other._v = [np.zeros_like(v) for v in self._v]
        other._logits = np.zeros_like(self._logits)
        other._lock = threading.Lock()
        return other

    # -- prompt ----------------------------------------------------------------------------------
    def _prompt_tokens(self, terms: tuple[str, ...]) -> list[int]:
        """<|startofprev|> + " term, term, term." (whole terms, bounded), or nothing.

        Whisper reads the prompt as the text before this utterance, so it copies the terms'
        spelling; a comma list closed by a full stop kept its commas out of the transcript
        better than a bare list (espeak-ng drug-name sentences, tiny.en).
        """
        ids: list[int] = []
        for n in range(1, len(terms) + 1):
            candidate = self.tokenizer.encode(" " + ", ".join(terms[:n]) + ".")
            if len(candidate) > MAX_PROMPT_TOKENS:
                log.warning("asr vocabulary: the Whisper prompt holds %d of %d terms (limit %d tokens)",
                            n - 1, len(terms), MAX_PROMPT_TOKENS)
                break
            ids = candidate
        return [self.sot_prev, *ids] if ids else []

    # -- model calls -----------------------------------------------------------------------------
    def _encode(self, audio: np.ndarray, run_options: ort.RunOptions | None) -> tuple[list[ort.OrtValue], int]:
        mel = log_mel(audio, self.n_mels, padding=HOP)
        tail = min(TAIL_FRAMES[1], max(TAIL_FRAMES[0], SHORT_FRAMES - mel.shape[1]))
        frames = min(mel.shape[1] + tail, 3000)
        frames += frames % 2  # conv stride 2: an even count
        mel = np.pad(mel, ((0, 0), (0, max(0, frames - mel.shape[1]))))[:, :frames]
        feed = {"mel": ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(mel[None]))}
        try:
            return self._enc.run_with_ort_values(self._enc_outputs, feed, run_options), frames
        except Exception:
            if run_options is not None and run_options.terminate:
                raise Cancelled from None
            raise

    def _step(self, io: ort.IOBinding, tokens: list[int], past: int) -> np.ndarray:
        """Run the decoder on ``tokens`` at positions past… ; returns the last position's logits."""
        n, d = len(tokens), self.n_state
        tok = np.array([tokens], np.int64)
        off = np.array([past], np.int64)
        io.bind_cpu_input("tokens", tok)
        io.bind_cpu_input("offset", off)
        row = d * 4
        for i in range(self.n_layer):
            for kind, buf in (("k", self._k[i]), ("v", self._v[i])):
                ptr = buf.ctypes.data
                io.bind_input(f"self_{kind}_{i}", "cpu", 0, np.float32, [1, past, d], ptr)
                io.bind_output(f"new_{kind}_{i}", "cpu", 0, np.float32, [1, n, d], ptr + past * row)
        io.bind_output("logits", "cpu", 0, np.float32, [1, self.n_vocab], self._logits.ctypes.data)
        self._dec.run_with_iobinding(io)
        return self._logits[0]

    # -- decoding --------------------------------------------------------------------------------
    def full_prompt(self, previous: Sequence[int] = ()) -> list[int]:
        """<|startofprev|> + vocabulary terms + the previous utterance's text (either may be empty)."""
        if not previous:
            return self.prompt
        return [*(self.prompt or [self.sot_prev]), *previous]

    def decode(self, audio: np.ndarray, max_tokens: int | None = None,
               run_options: ort.RunOptions | None = None, *, prompt: Sequence[int] | None = None,
               temperature: float = 0.0, timestamps: bool = False, seed: int = 0) -> Decoded:
        """One window (≤ 30 s) decoded once: greedy at temperature 0, else sampled (``seed``).

        ``prompt`` defaults to the vocabulary prompt. With ``timestamps`` the decoder emits
        Whisper's timestamp tokens and the result says how much of the window it accounted for.
        Setting ``run_options.terminate`` from another thread raises Cancelled.
        """
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        seconds = audio.size / SAMPLE_RATE
        if seconds > 30.0:  # callers window longer audio (longform.transcribe_utterance)
            audio, seconds = audio[:30 * SAMPLE_RATE], 30.0
        budget = min(self.n_ctx // 2, int(8 + TOKENS_PER_SECOND * seconds))
        capped = max_tokens is not None and max_tokens < budget  # a partial's cap, not the audio's
        if max_tokens is not None:
            budget = min(budget, max_tokens)
        cross, frames = self._encode(audio, run_options)
        # Timestamps may run into the silent tail (a last word's closing timestamp often lies just
        # past the samples), but not past what was encoded.
        last_ts = frames // 2 if timestamps else -1
        with self._lock:
            io = self._dec.io_binding()
            for i, value in enumerate(cross):
                io.bind_ortvalue_input(self._enc_outputs[i], value)
            r = self._sample(io, budget, run_options, self.prompt if prompt is None else list(prompt),
                             temperature, last_ts, np.random.default_rng(seed))
        if not capped and not r.cut_loop and len(r.tokens) >= budget:
            keep = looping_tail(r.tokens)
            if keep is not None:
                r.tokens, r.token_logprobs, r.cut_loop = r.tokens[:keep], r.token_logprobs[:keep], True
                r.text = self.tokenizer.decode(r.tokens).strip()
        r.compression_ratio = compression_ratio(r.text)
        return r

    def _sample(self, io: ort.IOBinding, budget: int, run_options: ort.RunOptions | None, prompt: list[int],
                temperature: float, last_ts: int, rng: np.random.Generator) -> Decoded:
        # Two calls before the first text token: Whisper's no-speech probability is read at the
        # <|startoftranscript|> position, and the fast decoder returns only the last position.
        timestamps = last_ts >= 0
        ts_begin = self.no_timestamps + 1
        start = [*prompt, self.sot]
        logits = self._step(io, start, 0)
        no_speech_prob = _softmax_at(logits, self.no_speech_id)
        rest = [*self.sot_sequence[1:]] + ([] if timestamps else [self.no_timestamps])
        if rest:  # (an English-only model with timestamps starts its text right after <|startoftranscript|>)
            logits = self._step(io, rest, len(start))
        past = len(start) + len(rest)
        seq: list[int] = []  # every sampled token, timestamps included
        tokens: list[int] = []  # text tokens
        token_logprobs: list[float] = []
        sum_logprob, count, cut = 0.0, 0, False
        if timestamps:
            budget += 4 + budget // 4  # room for the timestamp pairs
        while True:
            masked = logits + (self._bias_begin if not tokens else self._bias)
            if timestamps:
                masked[ts_begin:] = logits[ts_begin:]
                apply_timestamp_rules(masked, seq, ts_begin, self.eot, last_ts)
            tok, logprob = pick(masked, temperature, rng)
            sum_logprob += logprob
            count += 1
            if tok == self.eot:
                break
            seq.append(tok)
            if tok < self.eot:
                tokens.append(tok)
                token_logprobs.append(logprob)
                keep = repeated_tail(tokens)
                if keep is None and len(tokens) % 16 == 0 and \
                        compression_ratio(self.tokenizer.decode(tokens)) > self.cfg.compression_ratio_threshold:
                    keep = repeated_tail(tokens, min_repeats=2, max_period=len(tokens) // 2) or len(tokens)
                if keep is not None:
                    tokens, token_logprobs, cut = tokens[:keep], token_logprobs[:keep], True
                    break
            if len(seq) >= budget or past + 1 >= self.n_ctx:
                break
            if run_options is not None and run_options.terminate:
                raise Cancelled
            logits = self._step(io, [tok], past)
            past += 1
        ended = count > len(seq)  # by <|endoftext|>, not by the budget or a cut loop
        consumed, closed = window_end(seq, ts_begin) if timestamps else (None, True)
        if ended and not closed:
            consumed = None  # ended without a closing timestamp: the whole window counts as heard (as Whisper)
        last = max((i for i, t in enumerate(seq) if t >= ts_begin), default=-1)
        closed_tokens = sum(1 for t in seq[:last] if t < self.eot) if timestamps else len(tokens)
        return Decoded(tokens, self.tokenizer.decode(tokens).strip(), sum_logprob / max(1, count), no_speech_prob,
                       cut, token_logprobs, temperature, consumed_s=consumed, complete=ended or not timestamps,
                       closed_tokens=min(closed_tokens, len(tokens)))

    def is_silent(self, r: Decoded) -> bool:
        """Whisper's no-speech rule: the <|nospeech|> probability is high and the text unlikely."""
        if not any(c.isalnum() for c in r.text):  # "", ".", "..." are what silence decodes to
            return True
        return r.no_speech_prob > self.cfg.no_speech_threshold and r.avg_logprob < self.cfg.logprob_threshold

    def recognize(self, audio: np.ndarray, max_tokens: int | None = None,
                  run_options: ort.RunOptions | None = None, *, start_s: float | None = None) -> Recognition:
        """A final text (``max_tokens`` None: timestamps, seek, temperature fallback, the
        implausibly-short check) or a quick greedy partial (``max_tokens`` set).

        ``start_s`` places the utterance on the visit's timeline, so the previous utterance's
        text can be the prompt unless a silence came between (None: vocabulary prompt only)."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if audio.size < MIN_SECONDS * SAMPLE_RATE:
            return Recognition(text="", no_speech=True)
        previous = self.history.for_start(start_s) if self.cfg.prompt_previous_text else []
        if max_tokens is not None:
            r = self.decode(audio, max_tokens, run_options, prompt=self.full_prompt(previous))
            events: tuple[str, ...] = ()
        else:
            r, events = transcribe_utterance(self, audio, previous, run_options)
        if self.is_silent(r):
            return Recognition(text="", no_speech=True, avg_logprob=r.avg_logprob, no_speech_prob=r.no_speech_prob,
                               events=events)
        per_word = word_confidences([self.tokenizer.decode_bytes([t]) for t in r.tokens], r.token_logprobs, r.text)
        return Recognition(text=r.text, avg_logprob=r.avg_logprob, no_speech_prob=r.no_speech_prob,
                           word_confidence=per_word, events=events)

    # -- visit context ---------------------------------------------------------------------------
    def reset_context(self) -> None:
        """A new visit: nothing said in the last one may prompt this one."""
        self.history.reset()

    def note_final(self, start_s: float, end_s: float, result: Recognition) -> None:
        """The stored text of an utterance becomes the next one's prompt (unless it looked like a
        hallucination: a loop, or only reached at a high temperature)."""
        hallucinated = result.no_speech or "hallucination" in result.events
        tokens = self.tokenizer.encode(" " + result.text.strip()) if result.text.strip() else []
        self.history.remember(tokens, end_s, hallucinated)

    # -- Engine / Transcriber --------------------------------------------------------------------
    def transcribe(self, audio: np.ndarray) -> Recognition:
        return self.recognize(audio)

    def new_stream(self, start_s: float | None = None) -> RecognizerStream:
        return WhisperStream(self, start_s)  # start_s: where the utterance sits, for the previous text as prompt


def _softmax_at(logits: np.ndarray, index: int) -> float:
    m = float(logits.max())
    e = np.exp(logits - m)
    return float(e[index] / e.sum())


class WhisperStream(BufferedStream):
    """One utterance of the Whisper engine (the shared offline stream, appliance/asr/buffered.py)."""


__all__ = ["Decoded", "WhisperOnnx", "WhisperStream", "compression_ratio", "looping_tail", "repeated_tail",
           "word_confidences"]
