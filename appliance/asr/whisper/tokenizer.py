"""Whisper's byte-level BPE tokenizer in pure Python (read from ``tokenizer.json``).

Decoding maps ids to their byte strings; encoding (only needed for vocabulary prompts)
splits text with GPT-2's pre-tokenizer rule, maps bytes to the printable alphabet and
applies the merges by rank. No ``tokenizers``/``regex`` dependency on the device.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

_CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")


@lru_cache(maxsize=1)
def byte_alphabet() -> dict[int, str]:
    """GPT-2's reversible byte → printable character table."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _kind(ch: str) -> str:
    """'s' whitespace, 'L' letter, 'N' number, 'o' other — the classes of GPT-2's split rule."""
    if ch.isspace():
        return "s"
    if ch.isascii():
        return "L" if ch.isalpha() else "N" if ch.isdigit() else "o"
    cat = unicodedata.category(ch)[0]
    return cat if cat in "LN" else "o"


def pre_split(text: str) -> list[str]:
    """GPT-2's pattern ``'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+``."""
    kinds = [_kind(c) for c in text]
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == "'":
            hit = next((c for c in _CONTRACTIONS if text.startswith(c, i)), None)
            if hit:
                out.append(hit)
                i += len(hit)
                continue
        start = i
        j = i + 1 if text[i] == " " and i + 1 < n and kinds[i + 1] != "s" else i
        k = kinds[j]
        if k != "s":  # letters, numbers or other symbols, with one optional leading space
            j += 1
            while j < n and kinds[j] == k:
                j += 1
            out.append(text[start:j])
            i = j
            continue
        j = i
        while j < n and kinds[j] == "s":
            j += 1
        if j < n and j - i > 1:
            j -= 1  # leave the last space to lead the next word (the (?!\S) backtrack)
        out.append(text[i:j])
        i = j
    return out


@dataclass(frozen=True)
class SpecialTokens:
    eot: int
    sot: int
    sot_prev: int
    sot_lm: int
    no_speech: int
    no_timestamps: int
    transcribe: int
    translate: int
    timestamp_begin: int
    language: dict[str, int]


class WhisperTokenizer:
    def __init__(self, tokenizer_json: Path) -> None:
        data = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
        model = data["model"]
        self.vocab: dict[str, int] = model["vocab"]
        alphabet = byte_alphabet()
        back = {c: b for b, c in alphabet.items()}
        self._encode_byte = [alphabet[b] for b in range(256)]
        self.token_bytes: dict[int, bytes] = {i: bytes(back[c] for c in s) for s, i in self.vocab.items()}
        merges = [m.split(" ", 1) if isinstance(m, str) else m for m in model["merges"]]  # "a b" or ["a", "b"]
        self._ranks: dict[tuple[str, str], int] = {(a, b): r for r, (a, b) in enumerate(merges)}
        self.added: dict[str, int] = {t["content"]: t["id"] for t in data.get("added_tokens", [])}
        self.special_ids = frozenset(self.added.values())
        self.specials = self._find_specials()
        self.n_text = self.specials.eot  # ids below eot are text
        self._cache: dict[str, list[int]] = {}

    def _find_specials(self) -> SpecialTokens:
        a = self.added
        no_speech = a.get("<|nospeech|>", a.get("<|nocaptions|>"))
        if no_speech is None:
            raise ValueError("tokenizer has neither <|nospeech|> nor <|nocaptions|>")
        langs = {t[2:-2]: i for t, i in a.items()
                 if t.startswith("<|") and t.endswith("|>") and 2 <= len(t) - 4 <= 3 and t[2:-2].islower()}
        return SpecialTokens(
            eot=a["<|endoftext|>"], sot=a["<|startoftranscript|>"], sot_prev=a["<|startofprev|>"],
            sot_lm=a["<|startoflm|>"], no_speech=no_speech, no_timestamps=a["<|notimestamps|>"],
            transcribe=a["<|transcribe|>"], translate=a["<|translate|>"],
            timestamp_begin=a["<|notimestamps|>"] + 1, language=langs,
        )

    @property
    def is_multilingual(self) -> bool:
        # English-only models keep GPT-2's 50,256 text tokens; multilingual ones have 50,257.
        return self.specials.eot > 50256

    # -- decoding ------------------------------------------------------------------------------
    def decode_bytes(self, ids: list[int]) -> bytes:
        tb = self.token_bytes
        return b"".join(tb[i] for i in ids if i < self.n_text and i in tb)

    def decode(self, ids: list[int]) -> str:
        """Text of the non-special ids (timestamps and control tokens are skipped)."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # -- encoding ------------------------------------------------------------------------------
    def _bpe(self, word: str) -> list[int]:
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        parts = list(word)
        ranks = self._ranks
        while len(parts) > 1:
            best, best_rank = -1, None
            for i in range(len(parts) - 1):
                r = ranks.get((parts[i], parts[i + 1]))
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = i, r
            if best < 0:
                break
            pair = (parts[best], parts[best + 1])
            # Apply this merge everywhere it occurs, left to right, as BPE does.
            out, i = [], 0
            while i < len(parts):
                if i < len(parts) - 1 and (parts[i], parts[i + 1]) == pair:
                    out.append(pair[0] + pair[1])
                    i += 2
                else:
                    out.append(parts[i])
                    i += 1
            parts = out
        ids = [self.vocab[p] for p in parts]
        if len(self._cache) < 4096:
            self._cache[word] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """Token ids of plain text (no special tokens are recognised in it)."""
        ids: list[int] = []
        for piece in pre_split(text):
            mapped = "".join(self._encode_byte[b] for b in piece.encode("utf-8"))
            ids.extend(self._bpe(mapped))
        return ids
