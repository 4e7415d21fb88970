"""Read a CTranslate2 ``model.bin`` with numpy alone (no ctranslate2 at run or export time).

Layout: u32 version, u16-length spec name, u32 revision, u32 variable count; per variable a
u16-length name, u8 rank, u32 dims, u8 dtype, u32 byte count, raw bytes; then u32 alias
count and (alias, target) name pairs. Names are NUL-terminated inside their length.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


class Ct2Model:
    """Variables of a CTranslate2 model, memory-mapped; ``get`` converts to float32 on demand."""

    def __init__(self, path: Path) -> None:
        path = Path(path)
        if path.is_dir():
            path = path / "model.bin"
        self.path = path
        # A read-only map keeps 75 MB of float16 off the heap until a tensor is asked for.
        self._buf = np.memmap(path, dtype=np.uint8, mode="r")
        self._bytes = self._buf.data  # the same map as a memoryview, for struct
        self._pos = 0
        self.version = self._u32()
        if self.version < 5:
            raise ValueError(f"{path}: unsupported CTranslate2 model version {self.version}")
        self.spec = self._str()
        self.revision = self._u32()
        self._vars: dict[str, np.ndarray] = {}
        for _ in range(self._u32()):
            name = self._str()
            rank = int(self._buf[self._pos])
            self._pos += 1
            shape = struct.unpack_from(f"<{rank}I", self._bytes, self._pos)
            self._pos += 4 * rank
            code = int(self._buf[self._pos])
            self._pos += 1
            nbytes = self._u32()
            if code not in _DTYPES:
                raise ValueError(f"{path}: variable {name} has unknown dtype code {code}")
            data = self._buf[self._pos:self._pos + nbytes].view(_DTYPES[code]).reshape(shape)
            self._pos += nbytes
            self._vars[name] = data
        self.aliases: dict[str, str] = {}
        if self._pos < len(self._buf):
            for _ in range(self._u32()):
                alias, target = self._str(), self._str()
                self.aliases[alias] = target

    def _u32(self) -> int:
        (v,) = struct.unpack_from("<I", self._bytes, self._pos)
        self._pos += 4
        return v

    def _str(self) -> str:
        (n,) = struct.unpack_from("<H", self._bytes, self._pos)
        raw = bytes(self._buf[self._pos + 2:self._pos + 2 + n])
        self._pos += 2 + n
        return raw.rstrip(b"\0").decode("utf-8")

    def resolve(self, name: str) -> str:
        seen = set()
        while name in self.aliases and name not in seen:
            seen.add(name)
            name = self.aliases[name]
        return name

    def __contains__(self, name: str) -> bool:
        return self.resolve(name) in self._vars

    def __iter__(self) -> Iterator[str]:
        return iter(self._vars)

    def raw(self, name: str) -> np.ndarray:
        """The stored array (read-only view, stored dtype)."""
        try:
            return self._vars[self.resolve(name)]
        except KeyError:
            raise KeyError(f"{self.path}: no variable {name!r}") from None

    def get(self, name: str) -> np.ndarray:
        """The variable as a fresh float32 array."""
        return np.asarray(self.raw(name), dtype=np.float32).copy()

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v.shape) for k, v in self._vars.items()}
