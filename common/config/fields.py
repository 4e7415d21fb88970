"""Declaring settings: a dataclass field that carries its description and bounds.

Every key of the TOML file is one of these fields. The loader validates against the
metadata and the docs generator renders it, so the schema is the one source of truth.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any


def setting(
    default: Any,
    description: str,
    *,
    choices: Sequence[Any] | None = None,
    min: float | None = None,
    max: float | None = None,
    unit: str | None = None,
) -> Any:
    """A config key with its default, a one-line description and optional bounds."""
    meta = {"description": description, "choices": choices, "min": min, "max": max, "unit": unit}
    if isinstance(default, list):
        default = tuple(default)  # frozen configs hold tuples, never shared mutable lists
    return dataclasses.field(default=default, metadata=meta)


def section(cls: type, description: str) -> Any:
    """A nested table of the config file (e.g. ``[capture]``)."""
    return dataclasses.field(default_factory=cls, metadata={"description": description, "section": True})
