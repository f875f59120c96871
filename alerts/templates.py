"""Summary and description templates (Jinja2, sandboxed).

Variables: ``rule``, ``probe``, ``kind``, ``target``, ``severity``, ``field``, ``value``,
``labels``, ``status`` (firing or resolved), ``since``, ``run`` (id, status, error,
started_at, finished_at), ``details`` (the run's details: verdict, evidence, regressed
queries, moved clusters), ``values`` (every value of the run, name -> list of
``{labels, value}``). A detail the run did not produce renders as empty text.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, TemplateError, UndefinedError, meta
from jinja2.sandbox import SandboxedEnvironment

VARIABLES = (
    "rule", "probe", "kind", "target", "severity", "field", "value", "labels", "status",
    "since", "run", "details", "values",
)


@lru_cache(maxsize=1)
def environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)


def sample_context() -> dict[str, Any]:
    """Plausible values for every variable, to try a template at config load."""
    return {
        "rule": "RagmonExample", "probe": "docs-recall", "kind": "recall", "target": "docs",
        "severity": "warning", "field": "recall_ratio", "value": 0.5,
        "labels": {"alertname": "RagmonExample", "probe": "docs-recall"},
        "status": "firing", "since": "2026-01-01T00:00:00+00:00",
        "run": {"id": 1, "status": "ok", "error": None,
                "started_at": "2026-01-01T00:00:00+00:00",
                "finished_at": "2026-01-01T00:00:01+00:00"},
        "details": {}, "values": {},
    }


def check_template(source: str) -> str | None:
    """Why ``source`` cannot be rendered, or None when it can."""
    env = environment()
    try:
        unknown = sorted(meta.find_undeclared_variables(env.parse(source)) - set(VARIABLES))
    except TemplateError as exc:
        return f"{type(exc).__name__}: {exc}"
    if unknown:
        return f"unknown variable {unknown[0]!r}; available: {', '.join(VARIABLES)}"
    try:
        env.from_string(source).render(sample_context())
    except UndefinedError:
        return None  # depends on details only a real run has
    except Exception as exc:  # noqa: BLE001 - any failure of a user template is reported
        return f"{type(exc).__name__}: {exc}"
    return None


def render(source: str, context: dict[str, Any]) -> str:
    """Render a checked template; a failure on real data keeps the text and says why."""
    try:
        return environment().from_string(source).render(context)
    except Exception as exc:  # noqa: BLE001 - a notification is better than none
        return f"{source} (template failed: {type(exc).__name__}: {exc})"
