"""Beam search over Moonshine's merged decoder, for final texts (partials stay greedy).

Measured on the dev rooms (WPE→MVDR, live per utterance): greedy 18.5 % WER, beam 3 15.0 %,
beam 5 13.3 % (a first version; 13.9 % as shipped), for 1.6× and 2.1× the CPU of the whole
pipeline. Hypotheses are ranked by their mean token log-probability (a longer sentence is not
penalised for being long).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from appliance.asr.moonshine.tokenizer import BOS, EOS

# (token ids of every beam [B, 1], the beams' caches, first step?) → log-probabilities [B, vocab];
# the step writes the new caches into the dict it is given.
Step = Callable[[np.ndarray, dict[str, np.ndarray], bool], np.ndarray]


@dataclass
class _Hyp:
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    score: float = 0.0

    def extended(self, token: int, logprob: float) -> _Hyp:
        return _Hyp([*self.tokens, token], [*self.logprobs, logprob], self.score + logprob)

    def mean(self) -> float:
        return self.score / max(1, len(self.tokens))


def beam_search(step: Step, past: dict[str, np.ndarray], width: int, budget: int) -> tuple[list[int], list[float]]:
    """The best hypothesis's tokens (without BOS/EOS) and their log-probabilities."""
    beams = [_Hyp()]
    finished: list[_Hyp] = []
    ids = np.array([[BOS]], np.int64)
    for n in range(budget):
        logprobs = step(ids, past, n == 0)
        candidates = []
        for i, hyp in enumerate(beams):
            for token in np.argpartition(-logprobs[i], width)[:width]:
                candidates.append((hyp.score + float(logprobs[i, token]), i, int(token)))
        candidates.sort(reverse=True)
        kept: list[_Hyp] = []
        rows: list[int] = []
        for _score, i, token in candidates:
            hyp = beams[i].extended(token, float(logprobs[i, token]))
            if token == EOS:
                finished.append(_Hyp(hyp.tokens[:-1], hyp.logprobs[:-1], hyp.score))
            elif len(kept) < width:
                kept.append(hyp)
                rows.append(i)
        if not kept or len(finished) >= width:
            break
        beams = kept
        index = np.array(rows)
        for name, value in past.items():
            past[name] = value[index] if value.shape[0] > 1 else np.repeat(value, len(index), axis=0)
        ids = np.array([[h.tokens[-1]] for h in beams], np.int64)
    best = max(finished or beams, key=_Hyp.mean)
    return best.tokens, best.logprobs
