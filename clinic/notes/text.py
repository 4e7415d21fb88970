"""Spoken text → clean written sentences: disfluencies out, numbers as digits, one sentence a unit.

Used on transcripts (device ASR output, or ACI-Bench's tokenised dialogues) and, through
`digits()`, by the grounding check so a note's "20 mg" matches a transcript's "twenty milligrams".
"""

from __future__ import annotations

import re
from collections.abc import Callable

# ACI-Bench and some ASR output split contractions and punctuate with spaces ("do n't", "pain , and").
# (pattern, replacement): a template string or a function of the match.
_JOINS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (re.compile(r"\s+([,.?!;:])"), r"\1"),
    (re.compile(r"\b(do|does|did|is|are|was|were|has|have|had|could|would|should|wo|ca|ai)\s+n't\b", re.I), r"\1n't"),
    (re.compile(r"\b(gon|wan|got)\s+na\b", re.I), lambda m: {"gon": "going to", "wan": "want to"}.get(
        m.group(1).lower(), "got to")),
    (re.compile(r"\bgonna\b", re.I), "going to"),
    (re.compile(r"\bwanna\b", re.I), "want to"),
    (re.compile(r"\bkinda\b", re.I), "kind of"),
    (re.compile(r"\bsorta\b", re.I), "sort of"),
    (re.compile(r"\bwont\b", re.I), "won't"),
    (re.compile(r"\bwhats\b", re.I), "what's"),
]
_FILLERS = re.compile(
    r"(?:^|(?<=[\s,.?!]))(?:uh+|um+|uhm+|erm|er|ah+|hmm+|mm+-?hmm+|mhm+|uh-huh|you know|i mean|like,)"
    r"(?=[\s,.?!]|$)[,.]?", re.I)
_REPEAT = re.compile(r"\b(\w+(?:'\w+)?(?: \w+(?:'\w+)?){0,2})(?:[\s,]+\1\b)+", re.I)  # "i , i , i" → "i"
_FRAGMENT = re.compile(r"\b\w+-(?=\s+\w)")  # "ex- exerting" → "exerting"
_SPACES = re.compile(r"\s{2,}")
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")
# Unpunctuated turns (ACI's "aci" dialogues are ASR-like) are cut at discourse markers instead.
_MARKERS = re.compile(r"\s+(?=(?:okay|alright|all right|so|now|and then|um)\b)", re.I)
# Still too long: cut before a conjunction that starts a new clause.
_CLAUSES = re.compile(r"\s+(?=(?:but|because|and (?:I|you|we|it|she|he|they|then|that|your|my))\b)", re.I)

_UNITS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
          "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
          "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
         "ninety": 90}
_NUMBER_WORD = "|".join([*_UNITS, *_TENS, "hundred", "thousand", "a hundred"])
_NUMBER_RUN = re.compile(rf"\b(?:{_NUMBER_WORD})(?:[\s-]+(?:and\s+)?(?:{_NUMBER_WORD}))*\b", re.I)
# "one" is mostly a pronoun ("the right one"); convert it only next to a unit or another number.
_LONE_ONE = re.compile(r"^(?:one|a hundred)$", re.I)
_UNIT_AFTER = re.compile(r"^\s*(?:mg|milligrams?|grams?|units?|times?|days?|weeks?|months?|years?|hours?|"
                         r"percent|%|out of|to|over|/|tablets?|pills?|minutes?|point|cc|ml|pounds?|mm|cm)\b", re.I)
_UNIT_WORDS = [
    (re.compile(r"\bmilligrams?\b", re.I), "mg"),
    (re.compile(r"\b(\d+) percent\b", re.I), r"\1%"),
    (re.compile(r"\b(\d+) point (\d+)\b", re.I), r"\1.\2"),
    (re.compile(r"\b(\d+) over (\d+)\b", re.I), r"\1/\2"),
    (re.compile(r"\b(\d+) out of (\d+)\b", re.I), r"\1/\2"),
]


def _value(words: list[str]) -> int | None:
    total, current = 0, 0
    for w in words:
        if w in _UNITS:
            current += _UNITS[w]
        elif w in _TENS:
            current += _TENS[w]
        elif w == "hundred":
            current = max(current, 1) * 100
        elif w == "thousand":
            total += max(current, 1) * 1000
            current = 0
        elif w in ("a", "and"):
            continue
        else:
            return None
    return total + current


def digits(text: str) -> str:
    """Number words as digits ("twenty milligrams" → "20 mg", "one twenty over eighty" → "120/80")."""
    def repl(m: re.Match[str]) -> str:
        phrase = m.group(0)
        if _LONE_ONE.match(phrase) and not _UNIT_AFTER.match(text[m.end():]):
            return phrase
        words = re.split(r"[\s-]+", phrase.lower())
        # "one twenty" (a blood pressure) is two numbers said in a row, not one.
        groups: list[list[str]] = [[]]
        for w in words:
            prev = groups[-1][-1] if groups[-1] else None
            if (prev in _UNITS and w in {*_UNITS, *_TENS}) or (prev in _TENS and w in _TENS):
                groups.append([])
            groups[-1].append(w)
        values = [_value(g) for g in groups]
        if any(v is None for v in values):
            return phrase
        if len(values) == 2 and values[0] is not None and values[0] < 10 and values[1] is not None and values[1] >= 10:
            return str(values[0] * 100 + values[1])  # "one twenty" → 120
        return " ".join(str(v) for v in values)

    out = _NUMBER_RUN.sub(repl, text)
    for pattern, sub in _UNIT_WORDS:
        out = pattern.sub(sub, out)
    return out


def clean(text: str) -> str:
    """Disfluencies, fillers, stutters and tokenisation artefacts removed; number words as digits."""
    out = f" {text.strip()} "
    for pattern, sub in _JOINS:
        out = pattern.sub(sub, out)
    out = _FRAGMENT.sub("", out)
    out = _FILLERS.sub(" ", out)
    out = _REPEAT.sub(r"\1", out)
    out = digits(out)
    out = re.sub(r"(?:\s*,)+\s*([.?!])", r"\1", out)  # ", ." left by a removed filler
    out = re.sub(r"^[\s,.;]+", "", out)
    out = re.sub(r"(?:\s*,){2,}", ",", out)
    out = re.sub(r"\bi\b", "I", out)
    return _SPACES.sub(" ", out).strip()


def sentences(text: str, long_unpunctuated: int = 30) -> list[str]:
    """Cleaned text cut into sentences; a long turn without punctuation is cut at discourse markers."""
    parts = [p for p in _SENTENCE_END.split(text) if p.strip()]
    out: list[str] = []
    for p in parts:
        if len(p.split()) > long_unpunctuated and not re.search(r"[.?!]\s*\S", p):
            for q in _MARKERS.split(p):
                if len(q.split()) > long_unpunctuated:
                    out.extend(r for r in _CLAUSES.split(q) if r.strip())
                elif q.strip():
                    out.append(q)
        else:
            out.append(p)
    return [finish(s) for s in out if re.search(r"\w", s)]


def finish(sentence: str) -> str:
    """Capital first letter and closing punctuation."""
    s = sentence.strip().strip(",;: ")
    s = re.sub(r"^(?:and|but|so|okay|alright|all right|well|now|then|yeah|oh)\b[,\s]+", "", s, flags=re.I)
    s = re.sub(r"^(?:and|but|so|okay|alright|all right|well|now|then|yeah|oh)\b[,\s]+", "", s, flags=re.I)
    if not s:
        return s
    s = s[0].upper() + s[1:]
    return s if s[-1] in ".?!" else s + "."


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower())
