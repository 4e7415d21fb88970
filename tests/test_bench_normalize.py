"""The benchmark's WER normalisation treats both systems' spellings of the same words alike."""

from benchmarks.normalize import normalize, number_words, wer


def test_numbers_case_and_punctuation():
    assert normalize("Ten of Clubs.") == normalize("10 of clubs")
    assert normalize("He's 58, uh, years old!") == "he's fifty eight years old"
    assert normalize("<s> five five </s>") == "five five"
    assert normalize("And Mr. John Dashwood") == "and mister john dashwood"
    assert number_words(1234) == "one thousand two hundred thirty four"


def test_wer_counts_real_differences():
    assert wer(["the patient has a fever"], ["the patient has a fever"]) == 0.0
    assert wer(["the patient has a fever"], ["the patient has no fever"]) == 0.2


def test_error_rates_split_deletions_substitutions_insertions():
    from benchmarks.normalize import error_rates

    r = error_rates(["the patient has a fever today", "take it twice"],
                    ["the patient has no fever", "take it twice a day"])
    assert (r["del"], r["sub"], r["ins"]) == (1 / 9, 1 / 9, 2 / 9)
    assert abs(r["wer"] - (r["del"] + r["sub"] + r["ins"])) < 1e-9
