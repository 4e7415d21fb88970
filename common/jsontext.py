"""JSON that is JSON: no NaN or ±Infinity in, none out.

Python's json module reads `NaN`, `Infinity` and numbers like `1e400` (which overflow to inf) and
writes them back as `NaN` / `Infinity`, which no other JSON parser accepts. Input read from
outside (MQTT messages, the control socket) goes through ``loads``; output printed for other
programs goes through ``dumps``.
"""

from __future__ import annotations

import json
import math
from typing import Any


class NonFiniteNumber(ValueError):
    """The text holds NaN, Infinity or a number too large for a float."""


def refuse_constant(name: str) -> float:
    """json.loads hook: NaN, Infinity and -Infinity are not JSON numbers."""
    raise NonFiniteNumber(f"{name} is not a JSON number")


def finite_float(text: str) -> float:
    """json.loads hook: a number that overflows a float (1e400) would become inf."""
    value = float(text)
    if not math.isfinite(value):
        raise NonFiniteNumber(f"number {text[:40]} is out of range")
    return value


def loads(text: str | bytes) -> Any:
    """json.loads that raises NonFiniteNumber (a ValueError) for NaN, ±Infinity and overflowing numbers."""
    return json.loads(text, parse_constant=refuse_constant, parse_float=finite_float)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def dumps(obj: Any, **kwargs: Any) -> str:
    """json.dumps whose output is always valid JSON: a non-finite float (e.g. from a row stored
    before input was checked) is written as null instead of NaN / Infinity."""
    try:
        return json.dumps(obj, allow_nan=False, **kwargs)
    except ValueError:
        return json.dumps(_finite(obj), allow_nan=False, **kwargs)
