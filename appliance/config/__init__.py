"""The device's typed configuration: schema, loader and generated reference (the machinery, and
ConfigError, are common.config's)."""

from appliance.config.loader import load_config, parse_config
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
    "ApplianceConfig", "CaptureConfig", "DaemonConfig", "DeviceConfig", "GpioConfig",
    "PathsConfig", "StoreConfig", "VadConfig", "load_config", "parse_config",
]
