"""Typed TOML configs, the same way for the device and the clinic server: settings declared as
dataclass fields with descriptions and bounds (fields.py), read into frozen objects with errors
that name file, key and value (build.py), and rendered as a commented file or a reference (render.py)."""

from common.config.build import ConfigError, build_section, read_toml
from common.config.fields import section, setting

__all__ = ["ConfigError", "build_section", "read_toml", "section", "setting"]
