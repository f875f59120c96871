"""Value types shared by every config section: durations, paths, secrets, kinded entries."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    SecretStr,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError

ECHO_KEY = "echo_input"


def config_error(
    error_type: str, message: str, context: dict[str, Any] | None = None, *,
    echo_input: bool = False,
) -> PydanticCustomError:
    """A config validation error. It says itself whether the loader may append the value it
    rejected (", got ..."): only when ``echo_input`` is true, so a new error type never leaks a
    secret by default. Errors raised on a whole entry (model validators) must not echo: the
    entry may hold secrets."""
    return PydanticCustomError(error_type, message, {**(context or {}), ECHO_KEY: echo_input})


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(value: Any) -> float:
    """Parse a Prometheus-style duration ("500ms", "30s", "1h30m", "7d") into seconds; a plain
    number is a number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        raise config_error(
            "duration",
            "durations are strings with a unit, like '30s', '15m' or '1h', or a number of "
            "seconds; got {value}",
            {"value": repr(value)},
        )
    text = value.strip()
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("-")
    parts = _DURATION.findall(body)
    if not body or "".join(n + u for n, u in parts) != body:
        raise config_error(
            "duration",
            "{value} is not a duration; use a number and a unit (ms, s, m, h, d, w), like '30s'",
            {"value": repr(value)},
        )
    return sign * sum(float(n) * _UNITS[u] for n, u in parts)


def _positive(seconds: float) -> float:
    if seconds <= 0:
        raise config_error(
            "positive_duration", "must be a positive duration, like '30s'", {}, echo_input=True
        )
    return seconds


def _non_negative(seconds: float) -> float:
    if seconds < 0:
        raise config_error("duration", "must not be negative", {})
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_positive)]
"""Seconds, written in the config as a positive duration string."""

OptionalDelay = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_non_negative)]
"""Seconds, may be "0s"."""


def base_dir(info: ValidationInfo) -> Path:
    """The directory relative paths resolve against: the config file's own directory."""
    ctx = info.context or {}
    return Path(ctx.get("base_dir", "."))


def _resolve(value: Path, info: ValidationInfo) -> Path:
    path = Path(os.path.expanduser(str(value)))
    # Not resolve(): a link's own path stays valid when its target is replaced (ConfigMap).
    return path if path.is_absolute() else Path(os.path.abspath(base_dir(info) / path))


def _must_exist(path: Path) -> Path:
    if not path.exists():
        raise config_error(
            "path_missing", "file or directory {path} does not exist", {"path": repr(str(path))}
        )
    return path


ConfigPath = Annotated[Path, AfterValidator(_resolve)]
"""A path; relative paths resolve against the config file's directory (as in Prometheus)."""

ExistingPath = Annotated[Path, AfterValidator(_resolve), AfterValidator(_must_exist)]


def _read_secret(value: Any, info: ValidationInfo) -> Any:
    """Resolve ``{env: NAME}`` or ``{file: PATH}``; a plain string is taken as it is."""
    if isinstance(value, SecretStr) or isinstance(value, str):
        return value
    if not isinstance(value, dict) or len(value) != 1 or not ({"env", "file"} & value.keys()):
        raise config_error(
            "secret",
            "a secret is a string, {env_form} or {file_form}",
            {"env_form": "{env: VARIABLE}", "file_form": "{file: PATH}"},
        )
    if "env" in value:
        name = str(value["env"])
        if name not in os.environ:
            raise config_error(
                "secret_env",
                "environment variable {name} is not set; export it or use {file_form}",
                {"name": repr(name), "file_form": "{file: PATH}"},
            )
        return os.environ[name]
    path = _resolve(Path(str(value["file"])), info)
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise config_error(
            "secret_file",
            "secret file {path} cannot be read ({reason}); mount it or fix the path",
            {"path": repr(str(path)), "reason": exc.strerror or type(exc).__name__},
        ) from None


Secret = Annotated[SecretStr, BeforeValidator(_read_secret)]
"""A secret value: literal, from an environment variable, or from a mounted file."""


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, values are immutable."""

    # Field docstrings are the descriptions in docs/config.md (generated from these models).
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class KindConfig(Strict):
    """An entry of a kinded section (embedders, targets, probes, sinks): ``kind`` picks the class.
    """

    kind: str
    """Which implementation this entry uses."""


def secret_values(model: Any) -> list[str]:
    """Every secret value in a loaded config (each ``SecretStr``, and the password inside a
    secret URL), for redacting the errors that runs store, log and notify."""
    from urllib.parse import urlsplit

    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
            if "://" not in text:
                found.append(text)
                return
            try:  # a URL: its password is the secret; the rest helps the reader
                password = urlsplit(text).password
            except ValueError:
                password, text = None, ""
            found.extend(p for p in (password,) if p)
            if not text:
                found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name, None))
            for extra in (value.model_extra or {}).values():
                walk(extra)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    walk(model)
    return [s for s in found if s]
