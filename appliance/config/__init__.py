"""Typed configuration: schema, loader and generated reference."""

from appliance.config.loader import ConfigError, load_config, parse_config
from appliance.config.schema import (
    ApplianceConfig,
    CaptureConfig,
    DaemonConfig,
    DeviceConfig,
    GpioConfig,
    PathsConfig,
    StoreConfig,
    VadConfig,
)

__all__ = [
    "ApplianceConfig", "CaptureConfig", "ConfigError", "DaemonConfig", "DeviceConfig", "GpioConfig",
    "PathsConfig", "StoreConfig", "VadConfig", "load_config", "parse_config",
]
