"""Clinic vocabulary (drug names, conditions) that engines use to bias recognition.

Terms come from `asr.vocabulary` in the config and from `asr.vocabulary_file`, one term per
line. Whisper turns them into a prompt, sherpa-onnx transducers into hotwords (below);
Vosk ignores them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from appliance.config.schema import AsrConfig

BPE_UNITS = ("bpe", "cjkchar+bpe")


class VocabularyError(ValueError):
    """The vocabulary file cannot be read; the message names the file and the config key."""


def parse_terms(lines: Iterable[str]) -> list[str]:
    """Terms of a vocabulary file: `#` starts a comment, blank lines are skipped."""
    terms = []
    for line in lines:
        term = line.split("#", 1)[0].strip()
        if term:
            terms.append(" ".join(term.split()))  # tabs / double spaces would split hotword phrases oddly
    return terms


def dedupe(terms: Iterable[str]) -> tuple[str, ...]:
    """Drop repeats case-insensitively; the first spelling wins (the clinic's own capitalisation)."""
    seen: set[str] = set()
    out = []
    for term in terms:
        term = " ".join(term.split())
        key = term.casefold()
        if term and key not in seen:
            seen.add(key)
            out.append(term)
    return tuple(out)


def read_vocabulary_file(path: str | Path) -> list[str]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VocabularyError(f"asr.vocabulary_file: {p} does not exist (fix the path or set it to \"\")") from None
    except IsADirectoryError:
        raise VocabularyError(f"asr.vocabulary_file: {p} is a directory, not a text file") from None
    except PermissionError:
        raise VocabularyError(
            f"asr.vocabulary_file: {p} is not readable by this user (check its owner and mode)"
        ) from None
    except UnicodeDecodeError as e:
        raise VocabularyError(
            f"asr.vocabulary_file: {p} is not UTF-8 text (byte {e.start}); save it as UTF-8"
        ) from None
    except OSError as e:
        raise VocabularyError(f"asr.vocabulary_file: cannot read {p}: {e.strerror or e}") from None
    return parse_terms(text.splitlines())


def load_vocabulary(cfg: AsrConfig) -> tuple[str, ...]:
    """cfg.vocabulary then the terms of cfg.vocabulary_file, stripped and deduplicated in order."""
    terms = [t for t in (s.strip() for s in cfg.vocabulary) if t]
    if cfg.vocabulary_file:
        terms += read_vocabulary_file(cfg.vocabulary_file)
    return dedupe(terms)


def tokens_case(tokens_file: str | Path) -> str:
    """"upper" / "lower" when every letter in tokens.txt has that case, else "mixed".

    LibriSpeech-trained transducers know only UPPERCASE pieces: hotwords must be spelt so,
    and their output reads better lower-cased."""
    upper = lower = False
    with open(tokens_file, encoding="utf-8") as f:
        for line in f:
            sym = line.rsplit(maxsplit=1)[0] if line.strip() else ""
            if sym.startswith("<") and sym.endswith(">"):
                continue  # <blk>, <unk>, <sos/eos> are not text
            upper = upper or any(c.isupper() for c in sym)
            lower = lower or any(c.islower() for c in sym)
    return "upper" if upper and not lower else "lower" if lower and not upper else "mixed"


def hotwords_plan(spec: Mapping[str, Any], vocabulary: Sequence[str]) -> tuple[list[str], str]:
    """Hotword lines for a sherpa-onnx model (``spec`` from its manifest), or why there are none.

    The lines are plain phrases: sherpa-onnx cuts them into the model's tokens itself, which
    for BPE models needs the sentencepiece vocabulary (bpe.vocab) named in the manifest."""
    if not vocabulary:
        return [], "no vocabulary configured"
    if spec["kind"] != "transducer":
        return [], f"sherpa-onnx supports hotwords only for transducers, not {spec['kind']}"
    unit = spec.get("modeling_unit", "bpe")
    if unit in BPE_UNITS and not spec.get("bpe_vocab"):
        # sherpa-onnx needs the sentencepiece vocabulary to cut words into the model's pieces
        return [], f"modeling_unit {unit!r} needs \"bpe_vocab\" (the model's bpe.vocab) in the manifest"
    case = spec.get("hotwords_case") or tokens_case(spec["tokens"])
    fold = str.upper if case == "upper" else str.lower if case == "lower" else str
    # a word starting with ':' would be read as a per-phrase score
    lines = [fold(term) for term in vocabulary if not any(w.startswith(":") for w in term.split())]
    return lines, ""


def write_hotwords(lines: Sequence[str], directory: str | None = None) -> str:
    """A hotwords file sherpa-onnx reads once while building the recognizer (caller deletes it)."""
    fd, path = tempfile.mkstemp(prefix="hotwords-", suffix=".txt", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("".join(f"{line}\n" for line in lines))
    return path
