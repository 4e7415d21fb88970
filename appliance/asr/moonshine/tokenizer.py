"""Moonshine's tokenizer as shipped in ``tokenizer.bin``: the SentencePiece-style vocabulary, id order.

The file is one entry per token id: a length (one byte, or two when the first has its high bit
set: low 7 bits, then the next byte × 128) followed by that many bytes of the token. Word starts
are the literal "▁" (U+2581); byte-fallback tokens (ids 3–258) are the raw byte itself, so
joining the bytes of a sequence and decoding UTF-8 once gives the text.

Only decoding is needed on the device (Moonshine takes no prompt), so there is no encoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

WORD_START = "\u2581".encode()
BOS, EOS = 1, 2  # <s> starts every decode, </s> ends it
_SPECIAL = 3  # ids below this are <unk>, <s>, </s>: never text


class TokenizerError(ValueError):
    """tokenizer.bin cannot be read (the message names the file)."""


def read_vocabulary(path: Path | str) -> list[bytes]:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TokenizerError(f"{path}: cannot read the Moonshine tokenizer ({exc.strerror})") from None
    tokens: list[bytes] = []
    i = 0
    while i < len(data):
        n = data[i]
        i += 1
        if n >= 0x80:
            if i >= len(data):
                raise TokenizerError(f"{path}: cut short inside token {len(tokens)}")
            n = (n & 0x7F) | (data[i] << 7)
            i += 1
        if i + n > len(data):
            raise TokenizerError(f"{path}: cut short inside token {len(tokens)}")
        tokens.append(data[i:i + n])
        i += n
    if len(tokens) <= _SPECIAL or tokens[BOS] != b"<s>" or tokens[EOS] != b"</s>":
        raise TokenizerError(f"{path}: not a Moonshine tokenizer.bin (no <s> and </s> at ids 1 and 2)")
    return tokens


class MoonshineTokenizer:
    def __init__(self, path: Path | str) -> None:
        self.pieces = read_vocabulary(path)

    def __len__(self) -> int:
        return len(self.pieces)

    def piece(self, token: int) -> bytes:
        """The token's text bytes ("▁" as a space); nothing for specials and ids past the vocabulary."""
        if token < _SPECIAL or token >= len(self.pieces):
            return b""
        return self.pieces[token].replace(WORD_START, b" ")

    def decode(self, tokens: Sequence[int]) -> str:
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", errors="replace").strip()
