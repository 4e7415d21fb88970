"""Share a window's refined text out among the utterances it was decoded from.

The refined pass decodes several utterances joined into one window; each stored line keeps its
speaker, so the window's words must go back to the lines they were said in. The live words are
the anchors: refined words that match or replace live words go to those words' line; words the
live pass missed (its deletions, which the refined pass exists to recover) go where their
estimated time falls, between the anchors around them, so a sentence the live pass dropped
lands in its own (possibly empty) line rather than in a neighbour's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from difflib import SequenceMatcher

_WORD = re.compile(r"[^\w']+")
_SENTENCE_END = (".", "?", "!")
SNAP_WORDS = 3  # how far a line break may move to reach a sentence end


def _norm(word: str) -> str:
    return _WORD.sub("", word.lower())


def share_words(live: Sequence[str], spans: Sequence[tuple[float, float]], refined: str) -> list[str]:
    """``refined`` (one window's text) cut into one text per utterance.

    ``live``: each utterance's live text; ``spans``: each utterance's (start, end) in the
    window's time, in order. Returns as many texts as utterances (an utterance may get "")."""
    if len(live) != len(spans):
        raise ValueError(f"{len(live)} texts for {len(spans)} spans")
    if not live:
        return []
    live_words = [(i, w) for i, text in enumerate(live) for w in text.split()]
    live_times = _word_times(live, spans)
    words = refined.split()
    owner: list[int | None] = [None] * len(words)
    times: list[float] = [0.0] * len(words)
    matcher = SequenceMatcher(a=[_norm(w) for _, w in live_words], b=[_norm(w) for w in words], autojunk=False)
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if tag in ("equal", "replace"):  # in proportion: a replaced run may straddle two lines
            for k in range(b1 - b0):
                twin = a0 + min(a1 - a0 - 1, k * (a1 - a0) // (b1 - b0))
                owner[b0 + k], times[b0 + k] = live_words[twin][0], live_times[twin]
    matched = [o is not None for o in owner]
    # Words the live pass missed: spread evenly in time between the matched words around them.
    window_end = spans[-1][1]
    k = 0
    while k < len(words):
        if owner[k] is not None:
            k += 1
            continue
        run_end = k
        while run_end < len(words) and owner[run_end] is None:
            run_end += 1
        t_a = times[k - 1] if k > 0 else spans[0][0]
        t_b = times[run_end] if run_end < len(words) else window_end
        n = run_end - k
        for j in range(n):
            times[k + j] = t_a + (j + 1) / (n + 1) * (t_b - t_a)
            owner[k + j] = _utterance_at(spans, times[k + j])
        k = run_end
    _snap_to_sentences(words, owner, matched)
    out: list[list[str]] = [[] for _ in live]
    for word, i in zip(words, owner, strict=True):
        out[i if i is not None else 0].append(word)
    return [" ".join(w) for w in out]


def _snap_to_sentences(words: Sequence[str], owner: list[int | None], matched: Sequence[bool]) -> None:
    """A line break placed by time alone moves to a sentence end a few words away ("How are you
    | today?" → "How are you today? |"), carrying only words no live word vouches for."""
    for b in range(1, len(words)):
        if owner[b - 1] == owner[b] or (matched[b - 1] and matched[b]):
            continue
        ends = [e for e in range(max(1, b - SNAP_WORDS), min(len(words), b + SNAP_WORDS) + 1)
                if words[e - 1].endswith(_SENTENCE_END)]
        if not ends or b in ends:
            continue
        e = min(ends, key=lambda x: abs(x - b))
        lo, hi, to = (b, e, owner[b - 1]) if e > b else (e, b, owner[b])
        if all(not matched[j] for j in range(lo, hi)):
            owner[lo:hi] = [to] * (hi - lo)


def _word_times(live: Sequence[str], spans: Sequence[tuple[float, float]]) -> list[float]:
    """Each live word's estimated time: its utterance's span shared evenly among its words."""
    times: list[float] = []
    for text, (start, end) in zip(live, spans, strict=True):
        n = len(text.split())
        times.extend(start + (j + 0.5) / n * (end - start) for j in range(n))
    return times


def _utterance_at(spans: Sequence[tuple[float, float]], t: float) -> int:
    """The utterance whose span holds ``t``, else the nearest one."""
    best, gap = 0, float("inf")
    for i, (start, end) in enumerate(spans):
        if start <= t <= end:
            return i
        d = min(abs(t - start), abs(t - end))
        if d < gap:
            best, gap = i, d
    return best
