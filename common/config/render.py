"""A config schema rendered for people: a complete commented TOML file (`appliance config show`,
`clinic config show`) and Markdown tables of every key (docs/config.md). One renderer for both
programs, so their files and references read the same."""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any

from common.config.build import type_name


def toml_value(value: Any) -> str:
    """A setting's value as TOML (strings escaped the way TOML basic strings and JSON agree on)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


def _sections(cfg: Any) -> list[tuple[dataclasses.Field[Any], Any]]:
    """The top-level tables of a config: (its field, the section's values)."""
    return [(top, getattr(cfg, top.name)) for top in dataclasses.fields(cfg)]


def commented_toml(cfg: Any, title: str) -> str:
    """Every key of the config object `cfg` with its value, each under its description; `title`
    is the first comment line."""
    out = [f"# {title}"]
    for top, values in _sections(cfg):
        out.append(f"\n[{top.name}]  # {top.metadata['description']}")
        for f in dataclasses.fields(values):
            out.append(f"# {f.metadata['description']}")
            out.append(f"{f.name} = {toml_value(getattr(values, f.name))}")
    return "\n".join(out) + "\n"


def _constraints(meta: Any) -> str:
    parts = []
    if meta.get("choices"):
        parts.append("one of " + ", ".join(f"`{toml_value(c)}`" for c in meta["choices"]))
    if meta.get("min") is not None or meta.get("max") is not None:
        parts.append(f"{meta.get('min', '…')} … {meta.get('max', '…')}")
    if meta.get("unit"):
        parts.append(meta["unit"])
    return "; ".join(parts)


def markdown_tables(cfg: Any) -> str:
    """One section per table of `cfg` (its defaults, usually): key, type, default, bounds, description."""
    out = []
    for top, values in _sections(cfg):
        out.append(f"\n## [{top.name}]\n\n{top.metadata['description']}\n")
        out.append("| key | type | default | allowed | description |")
        out.append("|---|---|---|---|---|")
        hints = typing.get_type_hints(type(values))
        for f in dataclasses.fields(values):
            desc = f.metadata["description"].replace("|", "\\|")
            out.append(f"| `{f.name}` | {type_name(hints[f.name])} | `{toml_value(getattr(values, f.name))}` "
                       f"| {_constraints(f.metadata)} | {desc} |")
    return "\n".join(out) + "\n"
