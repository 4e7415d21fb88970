"""Text normalisation for word error rate: case, punctuation, numbers spelled out.

Whisper writes "10 of clubs" where a reference says "ten of clubs"; both systems are
scored after the same normalisation, so the comparison stays fair.
"""

from __future__ import annotations

import re

import jiwer

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number_words(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_words(rest))
    if n < 1_000_000:
        rest = n % 1000
        return number_words(n // 1000) + " thousand" + ("" if rest == 0 else " " + number_words(rest))
    return " ".join(_ONES[int(d)] for d in str(n))


# Titles as Whisper's English normaliser spells them out.
_TITLES = {"mr": "mister", "mrs": "missus", "ms": "miss", "dr": "doctor", "st": "saint", "jr": "junior"}


def normalize(text: str) -> str:
    text = text.lower().replace("-", " ").replace(" n't", "n't")
    text = re.sub(r"\b(mr|mrs|ms|dr|st|jr)\.?(?=\s)", lambda m: _TITLES[m.group(1)], text)
    text = re.sub(r"<[^>]+>|\[[^\]]+\]", " ", text)  # <s>, [doctor] markers
    text = re.sub(r"(\d),(\d{3})", r"\1\2", text)
    text = re.sub(r"\d+", lambda m: " " + number_words(int(m.group())) + " ", text)
    text = re.sub(r"[^a-z' ]+", " ", text)
    text = re.sub(r"\b(um+|uh+|mm hmm|mm|hmm)\b", " ", text)  # fillers: neither side is judged on them
    return re.sub(r"\s+", " ", text).strip()


def wer(refs: list[str], hyps: list[str]) -> float:
    pairs = [(normalize(r), normalize(h)) for r, h in zip(refs, hyps, strict=True)]
    pairs = [(r, h) for r, h in pairs if r]
    return float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]))


def error_rates(refs: list[str], hyps: list[str]) -> dict[str, float]:
    """WER split into deletions, substitutions and insertions, each per reference word."""
    pairs = [(normalize(r), normalize(h)) for r, h in zip(refs, hyps, strict=True)]
    pairs = [(r, h) for r, h in pairs if r]
    out = jiwer.process_words([r for r, _ in pairs], [h for _, h in pairs])
    n = max(1, sum(len(r.split()) for r, _ in pairs))
    return {"wer": float(out.wer), "del": out.deletions / n, "sub": out.substitutions / n, "ins": out.insertions / n}
