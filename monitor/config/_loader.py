"""Read a config file: YAML (duplicate keys rejected), RAGMON_* overrides, strict validation,
cross-references. Every problem is collected and reported at once, each with its key path."""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core.core_schema import ErrorType

from ragmon.monitor.config._model import RootConfig, root_model
from ragmon.monitor.config._types import ECHO_KEY
from ragmon.monitor.errors import ConfigError, ConfigIssue

if TYPE_CHECKING:
    from ragmon.monitor.plugins import Plugins

ENV_PREFIX = "RAGMON_"
ENV_SEPARATOR = "__"

# key in an entry of section -> section it names
REFERENCES: dict[tuple[str, str], str] = {
    ("probes", "target"): "targets",
    ("probes", "embedder"): "embedders",
    ("probes", "golden_set"): "golden_sets",
    ("targets", "embedder"): "embedders",
}

# Values under these keys are never echoed back in an error message.
_SECRET_WORDS = ("url", "password", "token", "secret", "api_key", "headers", "auth")
# pydantic's own error types. Their message does not quote the input, so the loader appends
# it (", got 5"), except under a secret-looking key or for a whole entry (which may hold a
# secret anywhere inside). Custom errors say themselves whether to echo (``config_error``).
_BUILTIN_ERRORS = frozenset(typing.get_args(ErrorType)) - {"missing", "extra_forbidden"}


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys instead of keeping the last one silently."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def parse_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigIssue(where, "", f"YAML syntax error: {problem}")]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(source, "", "the top level must be a mapping of sections")])
    return data


def _norm(key: Any) -> str:
    return str(key).lower().replace("-", "_")


def apply_env_overrides(
    raw: dict[str, Any], environ: Mapping[str, str]
) -> dict[tuple[str, ...], str]:
    """Apply ``RAGMON_SECTION__KEY__SUBKEY=value`` (values parsed as YAML) to ``raw`` in place.

    Map keys match case-insensitively with ``-`` and ``_`` equal, so
    ``RAGMON_PROBES__DOCS_RECALL__TIMEOUT`` reaches ``probes: {docs-recall: {timeout: }}``.
    Returns the overridden key paths and the variable that set each, for error messages.
    """
    origins: dict[tuple[str, ...], str] = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or ENV_SEPARATOR not in name:
            continue
        parts = name[len(ENV_PREFIX):].split(ENV_SEPARATOR)
        node: dict[str, Any] = raw
        path: list[str] = []
        for i, part in enumerate(parts):
            key = next((k for k in node if _norm(k) == _norm(part)), part.lower())
            path.append(key)
            if i == len(parts) - 1:
                node[key] = _env_value(name, environ[name], path)
            else:
                child = node.get(key)
                if not isinstance(child, dict):
                    child = node[key] = {}
                node = child
        origins[tuple(path)] = name
    return origins


def _env_value(name: str, text: str, path: list[str]) -> Any:
    """An override's value, parsed as YAML like the file's; the value itself is never quoted
    in the error (it may be a secret)."""
    if not text:
        return ""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError([ConfigIssue(
            f"environment variable {name}", _dotted(list(path)),
            f"the value is not valid YAML ({problem}); quote it, like {name}='\"...\"'",
        )]) from None


def _dotted(path: list[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(path: list[Any], raw: Any, root: type[BaseModel]) -> type[BaseModel] | None:
    """The config model class that validates the node at ``path`` (for listing valid keys)."""
    tp: Any = root
    node = raw
    for part in path:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = _field(tp, str(part))
            if field is None:
                return None
            tp = field.annotation
        elif typing.get_origin(tp) in (dict, list):
            tp = typing.get_args(tp)[-1]
        node = node.get(part) if isinstance(node, dict) else None
        tp = _unwrap(tp, node)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _field(model: type[BaseModel], key: str) -> Any:
    """The field a YAML key sets: by name, or by alias (``for``, ``from``)."""
    field = model.model_fields.get(key)
    if field is None:
        field = next((f for f in model.model_fields.values() if f.alias == key), None)
    return field


def _unwrap(tp: Any, node: Any) -> Any:
    """Strip Optional/Annotated; pick a kinded union's member by the node's ``kind``."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            kind = node.get("kind") if isinstance(node, dict) else None
            picked = [a for a in args if _tag(a) == kind] or args[:1]
            tp = picked[0]
            if len(args) == 1 or picked:
                continue
        else:
            return tp


def _tag(tp: Any) -> str | None:
    for meta in getattr(tp, "__metadata__", ()):
        if type(meta).__name__ == "Tag":
            return str(meta.tag)
    return None


def _may_echo(err: Any, path: list[Any]) -> bool:
    ctx = err.get("ctx") or {}
    if ECHO_KEY in ctx:
        return bool(ctx[ECHO_KEY])
    if err["type"] not in _BUILTIN_ERRORS or isinstance(err.get("input"), dict):
        return False
    return not any(w in _dotted(path) for w in _SECRET_WORDS)


def _issue(
    err: Any, raw: dict[str, Any], source: str, origins: dict[tuple[str, ...], str],
    root: type[BaseModel],
) -> ConfigIssue:
    node: Any = raw
    path: list[Any] = []
    for part in err["loc"]:
        if isinstance(node, dict) and part not in node and node.get("kind") == part:
            continue  # the tag pydantic inserts for a kinded union member
        path.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
    kind = err["type"]
    message = str(err["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        model = _model_at(path[:-1], raw, root)
        valid = sorted(f.alias or n for n, f in model.model_fields.items()) if model else []
        message = "unknown key" + (f"; valid keys: {', '.join(valid)}" if valid else "")
    elif kind == "missing":
        message = "required key is missing"
    elif kind == "unknown_kind":
        ctx = err.get("ctx", {})
        given = node.get("kind") if isinstance(node, dict) else None
        message = (
            f"unknown {ctx.get('what')} kind {given!r}; valid kinds: {ctx.get('valid')}"
            if given is not None
            else f"'kind' is missing; valid kinds: {ctx.get('valid')}"
        )
    elif _may_echo(err, path):
        message = f"{message}, got {err.get('input')!r}"
    env = origins.get(tuple(str(p) for p in path))
    return ConfigIssue(f"{source} (from {env})" if env else source, _dotted(path), message)


def _reference_issues(raw: dict[str, Any], source: str) -> list[ConfigIssue]:
    issues = []
    for (section, key), target_section in REFERENCES.items():
        entries = raw.get(section)
        if not isinstance(entries, dict):
            continue
        section_entries = raw.get(target_section)
        names: dict[str, Any] = section_entries if isinstance(section_entries, dict) else {}
        for entry_name, entry in entries.items():
            if not isinstance(entry, dict) or entry.get(key) is None:
                continue
            ref = entry[key]
            if ref not in names:
                what = target_section.rstrip("s").replace("_", " ")
                valid = (
                    f"valid: {', '.join(sorted(names))}"
                    if names
                    else f"no {target_section.replace('_', ' ')} are defined"
                )
                issues.append(
                    ConfigIssue(
                        source, f"{section}.{entry_name}.{key}", f"unknown {what} {ref!r}; {valid}"
                    )
                )
    return issues


def validate_raw(
    raw: dict[str, Any],
    source: str,
    base_dir: Path,
    plugins: Plugins,
    origins: dict[tuple[str, ...], str] | None = None,
) -> RootConfig:
    """Validate a parsed config against ``plugins``; raise ConfigError with every issue."""
    origins = origins or {}
    issues: list[ConfigIssue] = []
    root = root_model(plugins)
    model = None
    try:
        model = root.model_validate(raw, context={"base_dir": base_dir})
    except ValidationError as exc:
        issues.extend(_issue(e, raw, source, origins, root) for e in exc.errors())
    issues.extend(_reference_issues(raw, source))
    for check in plugins.config_checks:
        issues.extend(check(raw, source, plugins))
    if model is not None:
        issues.extend(_environment_issues(model, source, plugins))
    if issues:
        raise ConfigError(issues)
    assert model is not None
    model._plugins = plugins
    return model


def _environment_issues(model: RootConfig, source: str, plugins: Plugins) -> list[ConfigIssue]:
    """Kinds whose optional client is not installed: name the pip command that fixes it."""
    issues = []
    for section, registry in (
        ("embedders", plugins.embedders),
        ("targets", plugins.targets),
        ("probes", plugins.probes),
    ):
        entries: Mapping[str, Any] = getattr(model, section)
        for name, entry in entries.items():
            problem = registry.missing_requirement(entry.kind)
            if problem:
                issues.append(ConfigIssue(source, f"{section}.{name}", problem))
    return issues


def load_config(
    path: str | os.PathLike[str], plugins: Plugins, environ: Mapping[str, str] | None = None
) -> RootConfig:
    """Load, override from the environment, and validate a config file."""
    file = Path(path)
    source = str(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [ConfigIssue(source, "", f"cannot read the config file: {exc.strerror or exc}")]
        ) from None
    except UnicodeDecodeError as exc:
        line = file.read_bytes()[:exc.start].count(b"\n") + 1
        raise ConfigError([ConfigIssue(
            f"{source}:{line}", "", f"the file is not UTF-8 (byte {exc.object[exc.start]:#04x} "
            f"at offset {exc.start}); save it as UTF-8")]) from None
    raw = parse_yaml(text, source)
    origins = apply_env_overrides(raw, os.environ if environ is None else environ)
    # Lexically absolute, links not followed: a Kubernetes ConfigMap volume links each key
    # through a ``..data`` folder that kubelet replaces on update, so a resolved path would
    # point into a folder that is deleted at the next update.
    absolute = Path(os.path.abspath(file))
    config = validate_raw(raw, source, absolute.parent, plugins, origins)
    config._source = str(absolute)
    return config
