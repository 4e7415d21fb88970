"""Pure-Python Whisper tokenizer against the ``tokenizers`` library on the same tokenizer.json."""

from __future__ import annotations

import random

import pytest

from appliance.asr.whisper.tokenizer import WhisperTokenizer, pre_split
from tests import asr_model

whisper_ct2_dir = asr_model.whisper_ct2_dir  # the shared session fixture

TEXTS = [
    "Hello world", " metoprolol succinate 25 mg", "Atorvastatin, lisinopril; hydrochlorothiazide!",
    "Xarelto (rivaroxaban) 20mg q.d.", "levothyroxine\u00a0sodium 88 mcg", "I don't think he'll've",
    "'s 'S it's IT'S", "  two  spaces\tand\ttabs\n\nnewlines  ", "naïve café — 42°C ²³ Ⅻ 日本語 🙂 ok",
    "1234567 3.14159 x86_64", "", " ", "a  ", "ER visit @ 10:30pm #urgent", "B12/folate; SpO2 98%",
    "Ibuprofen 400 mg PRN, acetaminophen 1 g q6h", "Empagliflozin, semaglutide (Ozempic®)",
]


@pytest.fixture(scope="module")
def tokenizers_pair(whisper_ct2_dir):
    tokenizers = pytest.importorskip("tokenizers")
    path = whisper_ct2_dir / "tokenizer.json"
    return WhisperTokenizer(path), tokenizers.Tokenizer.from_file(str(path))


def test_encode_matches_tokenizers_library(tokenizers_pair):
    ours, ref = tokenizers_pair
    rng = random.Random(0)
    alphabet = "abcXYZ  '\t\n0129.,;!?é日🙂-_\u00a0\u2003"
    texts = TEXTS + ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 25))) for _ in range(1500)]
    for text in texts:
        assert ours.encode(text) == ref.encode(text, add_special_tokens=False).ids, repr(text)


def test_decode_round_trip_and_specials_skipped(tokenizers_pair):
    ours, ref = tokenizers_pair
    sp = ours.specials
    for text in TEXTS:
        ids = ours.encode(text)
        assert ours.decode(ids) == text
        assert ours.decode([sp.sot, sp.no_timestamps, *ids, sp.timestamp_begin + 7, sp.eot]) == text
        assert ours.decode(ids) == ref.decode(ids)


def test_special_token_ids(tokenizers_pair):
    ours, ref = tokenizers_pair
    sp = ours.specials
    assert (sp.eot, sp.sot, sp.no_timestamps, sp.sot_prev) == (50256, 50257, 50362, 50360)
    assert sp.no_speech == ref.token_to_id("<|nocaptions|>") == 50361
    assert sp.timestamp_begin == 50363 and sp.language["en"] == 50258
    assert not ours.is_multilingual
    assert ours.encode(" ") == [220]  # the blank suppressed at the first step


@pytest.mark.slow
def test_pre_split_follows_gpt2_rule():
    assert pre_split("I don't  know") == ["I", " don", "'t", " ", " know"]
    assert pre_split("a\n\nb") == ["a", "\n", "\n", "b"]
    assert pre_split("x  ") == ["x", "  "]
    assert pre_split(" 25mg!") == [" 25", "mg", "!"]
