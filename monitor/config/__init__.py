"""Typed, strict configuration: one YAML file plus RAGMON_* environment overrides.

``load_config(path)`` returns the validated root model or raises ``ConfigError`` with every
issue found. Relative paths resolve against the config file's directory.
"""

from __future__ import annotations

from ragmon.monitor.config._loader import load_config, parse_yaml, validate_raw
from ragmon.monitor.config._model import (
    EmbedderConfig,
    GoldenSetConfig,
    ProbeConfig,
    TargetConfig,
    root_model,
)
from ragmon.monitor.config._types import (
    ConfigPath,
    Duration,
    ExistingPath,
    KindConfig,
    Secret,
    Strict,
    parse_duration,
)

__all__ = [
    "ConfigPath", "Duration", "EmbedderConfig", "ExistingPath", "GoldenSetConfig",
    "KindConfig", "ProbeConfig", "Secret", "Strict", "TargetConfig", "load_config",
    "parse_duration", "parse_yaml", "root_model", "validate_raw",
]
