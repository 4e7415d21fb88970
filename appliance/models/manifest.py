"""Installed models: one directory per model with a `manifest.json` that pins every file.

A model is usable only if every file listed in its manifest is present with the recorded
sha256, so a half-copied or bit-rotten model fails loudly at start instead of producing a
wrong transcript. Hashes are cached per process by (size, mtime), which keeps repeated
loads cheap; `fresh=True` rehashes everything (daemon start, `appliance models verify`).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

MANIFEST = "manifest.json"
FORMAT = 1  # manifest layout version
_REQUIRED = ("name", "engine", "version", "source", "licence", "created", "files")
_CHUNK = 1 << 20


class ModelError(Exception):
    """A model that cannot be used; names the model, the file and what is wrong."""

    def __init__(self, model: str, problem: str, file: str | None = None) -> None:
        self.model, self.file, self.problem = model, file, problem
        where = f"model {model!r}" + (f": file {file}" if file else "")
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    path: Path  # the model directory
    name: str
    engine: str
    version: str
    source: dict[str, Any]
    licence: str
    created: str
    files: dict[str, FileEntry]
    extra: dict[str, Any] = field(default_factory=dict)  # engine-specific fields

    def file(self, rel: str) -> Path:
        """Absolute path of a file of this model (must be listed in the manifest)."""
        if rel not in self.files:
            raise ModelError(self.name, "not listed in the manifest", rel)
        return self.path / rel

    def get(self, key: str, default: Any = None) -> Any:
        return self.extra.get(key, default)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": FORMAT, "name": self.name, "engine": self.engine, "version": self.version,
            "source": self.source, "licence": self.licence, "created": self.created,
        }
        out.update(self.extra)
        out["files"] = {rel: {"sha256": f.sha256, "size": f.size} for rel, f in sorted(self.files.items())}
        return out


# -- hashing ------------------------------------------------------------------------
_cache: dict[tuple[str, int, int, int], str] = {}
_cache_lock = threading.Lock()


def sha256_file(path: Path, *, fresh: bool = False) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if not fresh:
        with _cache_lock:
            if key in _cache:
                return _cache[key]
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    digest = h.hexdigest()
    with _cache_lock:
        _cache[key] = digest
    return digest


# -- reading ------------------------------------------------------------------------
def _safe_rel(model: str, rel: str) -> str:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not p.parts or rel == MANIFEST:
        raise ModelError(model, "manifest lists an unsafe path", rel)
    return rel


def read_manifest_json(model_dir: Path | str) -> dict[str, Any]:
    """manifest.json as a JSON object, its keys not checked: the one place that reads the file."""
    path = Path(model_dir) / MANIFEST
    fallback = Path(model_dir).name
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(fallback, f"manifest unreadable: {path} is missing: every model directory needs a "
                                   f"{MANIFEST}", MANIFEST) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(fallback, f"manifest unreadable: {path} cannot be read as JSON: {exc}", MANIFEST) from None
    if not isinstance(data, dict):
        raise ModelError(fallback, "manifest unreadable: not a JSON object", MANIFEST)
    return data


def read_manifest(model_dir: Path) -> Manifest:
    """Parse manifest.json without checking the files."""
    model_dir = Path(model_dir)
    data = read_manifest_json(model_dir)
    name = str(data.get("name") or model_dir.name)
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ModelError(name, f"manifest unreadable: missing key(s) {', '.join(missing)}", MANIFEST)
    raw_files = data["files"]
    if not isinstance(raw_files, dict) or not raw_files:
        raise ModelError(name, "manifest unreadable: 'files' must be a non-empty object", MANIFEST)
    try:
        files = {_safe_rel(name, rel): FileEntry(str(v["sha256"]).lower(), int(v["size"]))
                 for rel, v in raw_files.items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(name, f"manifest unreadable: bad file entry ({exc})", MANIFEST) from None
    source = data["source"] if isinstance(data["source"], dict) else {"text": str(data["source"])}
    extra = {k: v for k, v in data.items() if k not in (*_REQUIRED, "format")}
    return Manifest(path=model_dir, name=name, engine=str(data["engine"]), version=str(data["version"]),
                    source=source, licence=str(data["licence"]), created=str(data["created"]),
                    files=files, extra=extra)


def check_files(manifest: Manifest, *, fresh: bool = False) -> list[ModelError]:
    """Every problem with the files of ``manifest`` (empty when the model is intact)."""
    problems: list[ModelError] = []
    for rel, entry in sorted(manifest.files.items()):
        path = manifest.path / rel
        try:
            st = path.stat()
        except FileNotFoundError:
            problems.append(ModelError(manifest.name, f"missing ({path})", rel))
            continue
        except OSError as exc:
            problems.append(ModelError(manifest.name, f"unreadable ({exc})", rel))
            continue
        if st.st_size != entry.size:
            problems.append(ModelError(manifest.name, f"size mismatch: {st.st_size} bytes, expected {entry.size}",
                                       rel))
            continue
        try:
            digest = sha256_file(path, fresh=fresh)
        except OSError as exc:
            problems.append(ModelError(manifest.name, f"unreadable ({exc})", rel))
            continue
        if digest != entry.sha256:
            problems.append(ModelError(
                manifest.name, f"sha256 mismatch: got {digest[:16]}…, expected {entry.sha256[:16]}…", rel))
    return problems


def load_manifest(model_dir: Path | str, *, fresh: bool = False) -> Manifest:
    """The manifest of an intact model; raises ModelError naming the first bad file.

    ``fresh=True`` rehashes every file; use it once at daemon start.
    """
    manifest = read_manifest(Path(model_dir))
    problems = check_files(manifest, fresh=fresh)
    if problems:
        raise problems[0]
    return manifest


# -- writing ------------------------------------------------------------------------
def write_manifest(model_dir: Path, *, name: str, engine: str, version: str, source: dict[str, Any],
                   licence: str, extra: dict[str, Any] | None = None) -> Manifest:
    """Hash every file under ``model_dir`` and write its manifest.json (fsynced)."""
    files: dict[str, FileEntry] = {}
    for path in sorted(model_dir.rglob("*")):
        rel = path.relative_to(model_dir).as_posix()
        if path.is_file() and rel != MANIFEST:
            files[rel] = FileEntry(sha256_file(path, fresh=True), path.stat().st_size)
    if not files:
        raise ModelError(name, f"no files were produced in {model_dir}")
    created = datetime.now(UTC).replace(microsecond=0).isoformat()
    manifest = Manifest(path=model_dir, name=name, engine=engine, version=version, source=source,
                        licence=licence, created=created, files=files, extra=dict(extra or {}))
    tmp = model_dir / (MANIFEST + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(manifest.to_json(), f, indent=2, ensure_ascii=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(model_dir / MANIFEST)
    return manifest


# -- lookup -------------------------------------------------------------------------
def resolve_model(models_dir: Path | str, name_or_path: str | Path) -> Path:
    """Directory of a model given by name (under ``models_dir``) or by path; it must have a manifest."""
    text = str(name_or_path)
    given_as_path = Path(text).is_absolute() or "/" in text or text.startswith(".")
    model_dir = Path(text) if given_as_path else Path(models_dir) / text
    if not (model_dir / MANIFEST).is_file():
        if given_as_path:
            raise ModelError(Path(text).name, f"no {MANIFEST} in {model_dir}")
        raise ModelError(text, f"not installed in {models_dir}; run `appliance models install {text} "
                               f"--dir {models_dir}`")
    return model_dir


def installed_models(models_dir: Path | str) -> list[Path]:
    """Model directories (with a manifest) under ``models_dir``; hidden staging dirs are skipped."""
    root = Path(models_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).exists())
