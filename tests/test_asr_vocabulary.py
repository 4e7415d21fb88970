"""Clinic vocabulary: config list + file, comments, dedupe, and errors that name the file."""

from __future__ import annotations

import pytest

from appliance.asr.vocabulary import VocabularyError, load_vocabulary, parse_terms
from appliance.config.schema import AsrConfig


def test_config_list_and_file_merge_in_order_deduped(tmp_path):
    f = tmp_path / "terms.txt"
    f.write_text(
        "# cardiology\n"
        "metoprolol\n"
        "\n"
        "   Atrial fibrillation   \n"
        "AMOXICILLIN  # duplicate of the config entry, other case\n"
        "heart   failure\twith reduced ejection fraction\n"
        "  # indented comment\n",
        encoding="utf-8",
    )
    cfg = AsrConfig(vocabulary=("Amoxicillin", " lisinopril ", "", "metoprolol"), vocabulary_file=str(f))
    assert load_vocabulary(cfg) == (
        "Amoxicillin", "lisinopril", "metoprolol", "Atrial fibrillation",
        "heart failure with reduced ejection fraction",
    )


def test_empty_config_gives_no_terms():
    assert load_vocabulary(AsrConfig()) == ()


def test_non_ascii_terms_and_case_insensitive_dedupe():
    assert parse_terms(["Ménière's disease", "ménière's DISEASE", "이부프로펜"]) == [
        "Ménière's disease", "ménière's DISEASE", "이부프로펜"]
    cfg = AsrConfig(vocabulary=("Ménière's disease", "MÉNIÈRE'S DISEASE", "이부프로펜"))
    assert load_vocabulary(cfg) == ("Ménière's disease", "이부프로펜")


def test_missing_file_error_names_file_and_key(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(VocabularyError) as e:
        load_vocabulary(AsrConfig(vocabulary_file=str(missing)))
    assert str(missing) in str(e.value) and "asr.vocabulary_file" in str(e.value)


def test_directory_and_non_utf8_are_clear_errors(tmp_path):
    with pytest.raises(VocabularyError, match="is a directory"):
        load_vocabulary(AsrConfig(vocabulary_file=str(tmp_path)))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Ménière\n".encode("latin-1"))
    with pytest.raises(VocabularyError, match=r"not UTF-8.*latin1\.txt|latin1\.txt.*not UTF-8"):
        load_vocabulary(AsrConfig(vocabulary_file=str(latin1)))


def test_unreadable_file_is_a_clear_error(tmp_path, monkeypatch):
    f = tmp_path / "secret.txt"
    f.write_text("x\n")

    def denied(self, *a, **k):  # the tests run as root, which a chmod 000 does not stop
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(type(f), "read_text", denied)
    with pytest.raises(VocabularyError, match=r"secret\.txt is not readable"):
        load_vocabulary(AsrConfig(vocabulary_file=str(f)))
