"""docs/config.md, generated from the config models, so the reference cannot drift from the code.

``ragmon config-reference > docs/config.md`` regenerates it (for the plugins of this
install); a test fails when the committed file differs. Descriptions are the field
docstrings of the models.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

if TYPE_CHECKING:
    from ragmon.monitor.plugins import Plugins

HEADER = """# Configuration reference

One YAML file (`ragmon run -c FILE`, default `$RAGMON_CONFIG` or `./ragmon.yaml`). Every
section is optional. A documented example is [examples/ragmon.yaml](../examples/ragmon.yaml).
This page is generated from the code (`ragmon config-reference > docs/config.md`).

Conventions:
- **Unknown keys are errors**, reported with the file and the key path
  (`probes.canary.treshold: unknown key; valid keys: ...`); `ragmon check-config FILE` prints
  every error at once.
- **References are checked**: a probe's `target`, `embedder` and `golden_set`, and a target's
  `embedder`, must name an entry of their section; the error lists the valid names.
- **Durations** are strings with a unit: `500ms`, `30s`, `5m`, `1h`, `7d` (or a number of
  seconds).
- **Paths** are relative to the config file's directory, not the working directory.
- **Secrets** (`secret` below) are a literal string, `{env: VARIABLE}` or `{file: /mounted/path}`
  (a Kubernetes Secret volume; surrounding whitespace is stripped). They never appear in logs,
  metrics or error messages.
- **Environment overrides**: `RAGMON_<SECTION>__<KEY>[__<KEY>...]=value` sets any nested key,
  e.g. `RAGMON_STORE__URL=postgresql://ragmon@db/ragmon` or
  `RAGMON_PROBES__CANARY__EVERY=1m` (`-` in names may be written `_`). Values are parsed as
  YAML scalars. Errors name the variable.
"""


def _type_name(annotation: Any, metadata: list[Any]) -> str:
    validators = {getattr(getattr(m, "func", None), "__name__", "") for m in metadata}
    if "parse_duration" in validators:
        return "duration"
    if "_read_secret" in validators:
        return "secret"
    if "_must_exist" in validators:
        return "existing path"
    if "_resolve" in validators:
        return "path"
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0], list(args[1:]))
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (Union, types.UnionType):
        names = [_type_name(a, []) for a in args if a is not type(None)]
        return " \\| ".join(names) + (" (optional)" if type(None) in args else "")
    if origin in (list, tuple, set, frozenset):
        return f"list of {_type_name(args[0], [])}" if args else "list"
    if origin is dict:
        return f"map of {_type_name(args[1], [])}"
    if annotation is SecretStr:
        return "secret"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    if annotation is Path:
        return "path"
    return getattr(annotation, "__name__", str(annotation))


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


def _default(field: FieldInfo, type_name: str) -> str:
    if field.is_required():
        return "**required**"
    value = field.default
    if value is PydanticUndefined and field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, BaseModel) or value is None:
        return "" if value is None else "see below"
    if isinstance(value, list | dict) and len(str(value)) > 40:
        return "(built-in)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if type_name == "duration" and isinstance(value, int | float):
        return f"`{_duration(float(value))}`"
    return f"`{value}`"


def _describe(field: FieldInfo) -> str:
    return " ".join((field.description or "").split()).replace("|", "\\|")


def _nested(annotation: Any) -> list[tuple[str, type[BaseModel]]]:
    """Models reachable from a field: a section, a map or list of entries, or kinded entries."""
    found: list[tuple[str, type[BaseModel]]] = []
    origin = get_origin(annotation)
    args = get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [("", annotation)]
    if origin is typing.Annotated:
        return _nested(args[0])
    for arg in args:
        found += _nested(arg)
    return found


def render_model(model: type[BaseModel], path: str, level: int, out: list[str]) -> None:
    doc = " ".join((model.__doc__ or "").split())
    heading = "#" * min(level, 6)
    out.append(f"{heading} `{path}`\n")
    if doc and not doc.startswith("Usage docs"):
        out.append(doc + "\n")
    rows = []
    later: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        type_name = _type_name(field.annotation, list(field.metadata))
        rows.append(f"| `{field.alias or name}` | {type_name} | {_default(field, type_name)} | "
                    f"{_describe(field)} |")
        origin = get_origin(field.annotation)
        suffix = ".NAME" if origin is dict else "[]" if origin is list else ""
        entry = f"{path}.{field.alias or name}{suffix}"
        for _, sub in _nested(field.annotation):
            later.append((entry, sub))
    if rows:
        out.append("| key | type | default | description |\n|---|---|---|---|")
        out.extend(rows)
        out.append("")
    seen: set[type[BaseModel]] = set()
    for entry, sub in later:
        if sub in seen:
            continue
        seen.add(sub)
        kind = sub.model_fields.get("kind")
        kind_args = get_args(kind.annotation) if kind is not None else ()
        label = f"{entry} (kind: {kind_args[0]})" if len(kind_args) == 1 else entry
        render_model(sub, label, level + 1, out)


def render(plugins: Plugins) -> str:
    """The reference of the config these plugins accept: every section and installed kind."""
    from ragmon.monitor.config._model import root_model

    out = [HEADER]
    root = root_model(plugins)
    for name, field in root.model_fields.items():
        for _, model in _nested(field.annotation):
            origin = get_origin(field.annotation)
            if origin is dict:
                kind = model.model_fields.get("kind")
                kind_args = get_args(kind.annotation) if kind is not None else ()
                label = f"{name}.NAME" + (f" (kind: {kind_args[0]})" if len(kind_args) == 1
                                          else "")
            else:
                label = name
            render_model(model, label, 2, out)
    return "\n".join(out).rstrip() + "\n"

