"""Moonshine (base, English) on ONNX Runtime: a per-utterance recogniser for the larger tiers.

Moonshine encodes the raw waveform at its real length (no 30 s window, no mel), so its cost
follows the utterance; the decoder is the merged graph (first step computes the cross-attention
keys, later steps reuse them and grow the self-attention cache). Partial text is decoded
greedily, each final text by beam search (`asr.beam_size`, beam.py), with the guards the Whisper
engine has: a token budget bounded by the audio's length, loops cut as they start, and the
implausibly-short check (speech the VAD heard for seconds that came back as a few words is
decoded again in pieces cut at quiet points).
Utterances longer than Moonshine was trained on are decoded in such pieces from the start.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import onnxruntime as ort

from appliance.asr.buffered import BufferedStream
from appliance.asr.engine import Cancelled, NoVisitContext, Recognition, RecognizerStream
from appliance.asr.moonshine.beam import Step, beam_search
from appliance.asr.moonshine.tokenizer import BOS, EOS, MoonshineTokenizer
from appliance.asr.registry import engine_abilities
from appliance.asr.sessions import cpu_session, find_graph
from appliance.asr.whisper.decoding import (
    implausibly_short,
    looping_tail,
    quiet_splits,
    repeated_tail,
    word_confidences,
)
from appliance.config.schema import AsrConfig

RATE = 16000
MIN_SECONDS = 0.1  # the encoder's convolutions need this much audio to give one frame
MAX_SECONDS = 25.0  # longer utterances are decoded in pieces (Moonshine was trained on ≤ 30 s)
PIECE_SECONDS = 12.0  # target length of those pieces, cut at the quietest moment near each
TOKENS_PER_SECOND = 8.0  # as for Whisper: fast speech is ~5 tokens/s, numbers and names take more


class MoonshineOnnx(NoVisitContext):
    """The Engine (and Transcriber) for a model directory the installer converted (convert.py)."""

    abilities = engine_abilities("moonshine-onnx")

    def __init__(self, model_dir: Path | str, cfg: AsrConfig) -> None:
        model_dir = Path(model_dir)
        self.cfg = cfg
        self.name = f"moonshine-onnx:{model_dir.name}"
        fix = "install the model with `appliance models install`"
        self._enc = cpu_session(find_graph(model_dir, "encoder_model", fix), cfg.threads)
        self._dec = cpu_session(find_graph(model_dir, "decoder_model_merged", fix), cfg.threads)
        self.tokenizer = MoonshineTokenizer(model_dir / "tokenizer.bin")
        self._past = [i for i in self._dec.get_inputs() if i.name.startswith("past_key_values.")]
        self._outputs = [o.name for o in self._dec.get_outputs()]
        if not self._past or self._outputs[0] != "logits":
            raise ValueError(f"{model_dir}: the decoder is not Moonshine's merged decoder (reinstall the model)")
        # present.N.decoder.key → past_key_values.N.decoder.key, in output order
        self._present_to_past = ["past_key_values" + o[len("present"):] for o in self._outputs[1:]]
        heads, head_dim = self._past[0].shape[1], self._past[0].shape[3]
        self._empty = np.zeros((1, int(heads), 0, int(head_dim)), np.float32)

    def twin(self) -> MoonshineOnnx:
        """The engine for another thread (the refined pass): itself, since decoding keeps no state
        between calls and an ONNX Runtime session may run on two threads at once."""
        return self

    # -- decoding --------------------------------------------------------------------------------
    def decode(self, audio: np.ndarray, max_tokens: int | None = None,
               run_options: ort.RunOptions | None = None) -> tuple[list[int], list[float], bool]:
        """Tokens of one piece of audio, their log-probabilities, and whether a loop was cut: greedy
        for a partial (``max_tokens``), beam search of ``asr.beam_size`` for a final text."""
        budget = max(4, math.ceil(audio.size / RATE * TOKENS_PER_SECOND))
        budget = min(budget, max_tokens) if max_tokens else budget
        try:
            hidden = self._enc.run(None, {"input_values": audio[None, :]}, run_options)[0]
        except ort.capi.onnxruntime_pybind11_state.Fail as exc:
            if run_options is not None and run_options.terminate:
                raise Cancelled() from exc
            raise

        def step(ids: np.ndarray, past: dict[str, np.ndarray], first: bool) -> np.ndarray:
            if run_options is not None and run_options.terminate:
                raise Cancelled()
            batch = np.repeat(hidden, ids.shape[0], axis=0) if ids.shape[0] > 1 else hidden
            feed = {"input_ids": ids, "encoder_hidden_states": batch, "use_cache_branch": np.array([not first]),
                    **past}
            logits, *present = self._dec.run(self._outputs, feed, run_options)
            for name, value in zip(self._present_to_past, present, strict=True):
                if first or ".decoder." in name:  # the cross-attention keys are computed once
                    past[name] = value
            rows = logits[:, -1].astype(np.float64)
            top = rows.max(axis=1, keepdims=True)
            return rows - top - np.log(np.exp(rows - top).sum(axis=1, keepdims=True))

        past = {i.name: self._empty for i in self._past}
        if max_tokens is None and self.cfg.beam_size > 1:
            tokens, logprobs = beam_search(step, past, self.cfg.beam_size, budget)
        else:
            tokens, logprobs = self._greedy(step, past, budget)
        if (keep := repeated_tail(tokens)) is not None:
            return tokens[:keep], logprobs[:keep], True
        if len(tokens) >= budget and max_tokens is None and (keep := looping_tail(tokens)) is not None:
            return tokens[:keep], logprobs[:keep], True  # ran out going round again
        return tokens, logprobs, False

    @staticmethod
    def _greedy(step: Step, past: dict[str, np.ndarray], budget: int) -> tuple[list[int], list[float]]:
        tokens: list[int] = []
        logprobs: list[float] = []
        previous = BOS
        for n in range(budget):
            row = step(np.array([[previous]], np.int64), past, n == 0)[0]
            token = int(row.argmax())
            if token == EOS:
                break
            tokens.append(token)
            logprobs.append(float(row[token]))
            if repeated_tail(tokens) is not None:  # a loop: stop now, decode() cuts it
                break
            previous = token
        return tokens, logprobs

    def _recognize_piece(self, audio: np.ndarray, max_tokens: int | None,
                         run_options: ort.RunOptions | None) -> tuple[list[int], list[float], bool]:
        if audio.size < MIN_SECONDS * RATE:
            return [], [], False
        return self.decode(audio, max_tokens, run_options)

    def _in_pieces(self, audio: np.ndarray, target_s: float) -> tuple[list[int], list[float], bool]:
        tokens: list[int] = []
        logprobs: list[float] = []
        looped = False
        bounds = [0, *quiet_splits(audio, RATE, target_s=target_s), audio.size]
        for a, b in itertools.pairwise(bounds):
            t, lp, loop = self._recognize_piece(audio[a:b], None, None)
            tokens += t
            logprobs += lp
            looped |= loop
        return tokens, logprobs, looped

    def recognize(self, audio: np.ndarray, max_tokens: int | None = None,
                  run_options: ort.RunOptions | None = None, *, start_s: float | None = None) -> Recognition:
        """The text of one utterance (``max_tokens``: a partial's budget, no re-decoding); every
        utterance is recognised on its own, so ``start_s`` is not used."""
        audio = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        seconds = audio.size / RATE
        events: list[str] = []
        if max_tokens is None and seconds > MAX_SECONDS:
            tokens, logprobs, looped = self._in_pieces(audio, PIECE_SECONDS)
            events.append("seek")
        else:
            tokens, logprobs, looped = self._recognize_piece(audio, max_tokens, run_options)
        text = self.tokenizer.decode(tokens)
        if max_tokens is None and implausibly_short(text, seconds, self.cfg.implausible_chars_per_s):
            events.append("short")
            again = self._in_pieces(audio, 5.0)
            if len(self.tokenizer.decode(again[0]).split()) > len(text.split()):
                tokens, logprobs, looped = again
                text = self.tokenizer.decode(tokens)
                events.append("short-recovered")
        if looped:
            events.append("hallucination")
        if not any(c.isalnum() for c in text):
            return Recognition(text="", no_speech=True, events=tuple(events))
        pieces = [self.tokenizer.piece(t) for t in tokens]
        return Recognition(text=text, avg_logprob=float(np.mean(logprobs)) if logprobs else None,
                           word_confidence=word_confidences(pieces, logprobs, text), events=tuple(events))

    # -- the engine contract ---------------------------------------------------------------------
    def transcribe(self, audio: np.ndarray) -> Recognition:
        return self.recognize(audio)

    def new_stream(self, start_s: float | None = None) -> RecognizerStream:
        return BufferedStream(self, start_s)
