"""Reading the device's TOML config once into the frozen, validated ApplianceConfig.

Where the file is (--config, $APPLIANCE_CONFIG, the default path) is the device's business; reading
and checking it is the machinery the clinic server shares (common.config).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from appliance.config.schema import ApplianceConfig
from common.config import ConfigError, build_section, read_toml

DEFAULT_PATH = "/etc/appliance/appliance.toml"
ENV_VAR = "APPLIANCE_CONFIG"


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
    return parse_config(read_toml(file), file)


def parse_config(data: dict[str, Any], file: str = "<config>") -> ApplianceConfig:
    return build_section(ApplianceConfig, data, file)
