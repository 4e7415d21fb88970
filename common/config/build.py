"""Reading a TOML config into frozen, validated dataclasses (a schema of setting()/section() fields).

Errors name the key (dotted path), the offending value and the file, because the person
reading them is clinic IT with twenty rooms to install, not the author of the code.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file that cannot be used; the message says which key, value and file."""

    def __init__(self, file: str, key: str | None, message: str, value: Any = None) -> None:
        self.file, self.key, self.value = file, key, value
        where = f"{file}: {key}" if key else file
        shown = f" (got {value!r})" if value is not None else ""
        super().__init__(f"{where}: {message}{shown}")


def read_toml(file: str) -> dict[str, Any]:
    """The tables of a TOML file, or ConfigError saying why it cannot be read."""
    try:
        return tomllib.loads(Path(file).read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(file, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, None, f"not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(file, None, f"cannot read: {exc.strerror}") from None


def build_section(cls: type[T], data: Any, file: str, prefix: str = "") -> T:
    """An instance of the config dataclass `cls` from the parsed TOML `data` (its keys under `prefix`),
    every value checked against its field's type and bounds; absent keys keep their defaults."""
    if not isinstance(data, dict):
        raise ConfigError(file, prefix.rstrip(".") or None, "expected a table", data)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(file, prefix + key, f"unknown key (known keys here: {known})")
    values: dict[str, Any] = {}
    for name, value in data.items():
        key = prefix + name
        field = fields[name]
        if field.metadata.get("section"):
            values[name] = build_section(hints[name], value, file, key + ".")
        else:
            values[name] = _check_value(hints[name], field.metadata, value, file, key)
    return cls(**values)


def type_name(tp: Any) -> str:
    """A setting's type as the config file and its reference call it."""
    if typing.get_origin(tp) is tuple:
        return f"array of {type_name(typing.get_args(tp)[0])}"
    return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(tp, str(tp))


def _check_value(tp: Any, meta: Any, value: Any, file: str, key: str) -> Any:
    if typing.get_origin(tp) is tuple:
        if not isinstance(value, list):
            raise ConfigError(file, key, f"expected {type_name(tp)}", value)
        item_tp = typing.get_args(tp)[0]
        return tuple(_check_scalar(item_tp, {}, v, file, f"{key}[{i}]") for i, v in enumerate(value))
    if isinstance(tp, types.UnionType):
        raise TypeError(f"unsupported config type at {key}")  # schema bug, not user error
    return _check_scalar(tp, meta, value, file, key)


def _check_scalar(tp: Any, meta: Any, value: Any, file: str, key: str) -> Any:
    ok = (
        (tp is bool and isinstance(value, bool))
        or (tp is int and isinstance(value, int) and not isinstance(value, bool))
        or (tp is float and isinstance(value, (int, float)) and not isinstance(value, bool))
        or (tp is str and isinstance(value, str))
    )
    if not ok:
        raise ConfigError(file, key, f"expected {type_name(tp)}", value)
    if tp is float:
        value = float(value)
        # TOML has nan and ±inf; every comparison with nan is false, so it would pass any bound.
        if not math.isfinite(value):
            raise ConfigError(file, key, "must be a finite number (nan and inf are not allowed)", value)
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(file, key, f"must be one of {', '.join(map(repr, choices))}", value)
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and value < lo:
        raise ConfigError(file, key, f"must be at least {lo}", value)
    if hi is not None and value > hi:
        raise ConfigError(file, key, f"must be at most {hi}", value)
    return value
