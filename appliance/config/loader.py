"""Reading the TOML config once into frozen, validated objects.

Errors name the key (dotted path), the offending value and the file, because the person
reading them is clinic IT with twenty rooms to install, not the author of the code.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from appliance.config.schema import ApplianceConfig

DEFAULT_PATH = "/etc/appliance/appliance.toml"
ENV_VAR = "APPLIANCE_CONFIG"

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file that cannot be used; the message says which key, value and file."""

    def __init__(self, file: str, key: str | None, message: str, value: Any = None) -> None:
        self.file, self.key, self.value = file, key, value
        where = f"{file}: {key}" if key else file
        shown = f" (got {value!r})" if value is not None else ""
        super().__init__(f"{where}: {message}{shown}")


def resolve_path(explicit: str | None) -> tuple[str, bool]:
    """The config file to read and whether the user asked for it explicitly."""
    if explicit:
        return explicit, True
    if os.environ.get(ENV_VAR):
        return os.environ[ENV_VAR], True
    return DEFAULT_PATH, False


def load_config(path: str | None = None) -> ApplianceConfig:
    """Load the config named by ``path``, $APPLIANCE_CONFIG or the default location.

    A missing default file means built-in defaults; a missing file that was asked for is
    an error (a typo in --config must not silently run on defaults).
    """
    file, explicit = resolve_path(path)
    if not Path(file).exists():
        if explicit:
            raise ConfigError(file, None, "config file not found")
        return ApplianceConfig()
    try:
        raw = Path(file).read_bytes()
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(file, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, None, f"not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(file, None, f"cannot read: {exc.strerror}") from None
    return parse_config(data, file)


def parse_config(data: dict[str, Any], file: str = "<config>") -> ApplianceConfig:
    return _build(ApplianceConfig, data, file, prefix="")


def _build(cls: type[T], data: Any, file: str, prefix: str) -> T:
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
            values[name] = _build(hints[name], value, file, key + ".")
        else:
            values[name] = _check_value(hints[name], field.metadata, value, file, key)
    return cls(**values)


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is tuple:
        return f"array of {_type_name(typing.get_args(tp)[0])}"
    return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(tp, str(tp))


def _check_value(tp: Any, meta: Any, value: Any, file: str, key: str) -> Any:
    if typing.get_origin(tp) is tuple:
        if not isinstance(value, list):
            raise ConfigError(file, key, f"expected {_type_name(tp)}", value)
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
        raise ConfigError(file, key, f"expected {_type_name(tp)}", value)
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
