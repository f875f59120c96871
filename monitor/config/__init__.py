"""Typed, strict configuration: one YAML file plus RAGMON_* environment overrides.

``load_config(path, plugins)`` returns the validated root model or raises ``ConfigError``
with every issue found. Relative paths resolve against the config file's directory.
Features build their sections from what this package exports (never from its private
modules).
"""

from __future__ import annotations

from ragmon.monitor.config._loader import load_config, parse_yaml, validate_raw
from ragmon.monitor.config._model import (
    EmbedderConfig,
    GoldenSetConfig,
    ProbeConfig,
    RootConfig,
    ServerConfig,
    StoreConfig,
    TargetConfig,
    root_model,
)
from ragmon.monitor.config._types import (
    ConfigPath,
    Duration,
    ExistingPath,
    KindConfig,
    OptionalDelay,
    Secret,
    Strict,
    base_dir,
    config_error,
    parse_duration,
    secret_values,
)

__all__ = [
    "ConfigPath", "Duration", "EmbedderConfig", "ExistingPath", "GoldenSetConfig",
    "KindConfig", "OptionalDelay", "ProbeConfig", "RootConfig", "Secret", "ServerConfig",
    "StoreConfig", "Strict", "TargetConfig", "base_dir", "config_error", "load_config",
    "parse_duration", "parse_yaml", "root_model", "secret_values", "validate_raw",
]
