"""Vector index targets: one protocol (``abc.VectorTarget``), one module per engine,
one registry keyed by the config ``kind``. Engine clients are imported lazily."""

from __future__ import annotations

from typing import Any

from monitor.targets.abc import Description, SearchResult, TargetSpec, VectorTarget, Vectors

TARGET_KINDS: dict[str, TargetSpec] = {}


def build_target(name: str, config: Any) -> VectorTarget:
    return TARGET_KINDS[config.kind].build(name, config)


__all__ = [
    "TARGET_KINDS", "Description", "SearchResult", "TargetSpec", "VectorTarget", "Vectors",
    "build_target",
]
