"""The structure the code promises: the foundation imports no feature, nothing imports the
folders by their old top-level names, and one composition root assembles the features.

The import graph is read with ``ast`` (imports inside functions included), so an import
hidden in a function body cannot bring a cycle back.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("monitor", "probes", "alerts", "migrations")
FEATURES = ("ragmon.probes", "ragmon.alerts")
COMPOSITION_ROOT = "ragmon.monitor.app"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["ragmon", *parts])


def modules() -> dict[str, Path]:
    return {module_name(p): p for folder in FOLDERS for p in (REPO / folder).rglob("*.py")}


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, except those under ``if TYPE_CHECKING:`` (never executed)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            yield from (n for child in node.orelse for n in ast.walk(child))
            continue
        yield node
        yield from _runtime_nodes(node)


def imports_of(path: Path, name: str) -> Iterator[tuple[int, str]]:
    """Every module ``path`` imports when it runs, absolute, with its line (relative imports
    resolved; imports inside functions included, ``if TYPE_CHECKING:`` blocks not)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            yield node.lineno, base
            for alias in node.names:  # `from pkg import module` imports pkg.module
                yield node.lineno, f"{base}.{alias.name}"


def test_the_foundation_imports_no_feature() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{line} imports {target}"
        for name, path in modules().items()
        if name.startswith("ragmon.monitor") and name != COMPOSITION_ROOT
        for line, target in imports_of(path, name)
        if target.startswith(FEATURES)
    ]
    assert offenders == []


def test_no_module_uses_the_old_top_level_names() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{line} imports {target}"
        for name, path in modules().items()
        for line, target in imports_of(path, name)
        if target.split(".")[0] in FOLDERS
    ]
    assert offenders == []


def import_cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    mods = modules()
    graph = {
        name: {t for _, t in imports_of(path, name) if t in mods and t != name}
        for name, path in mods.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_feature_module_is_in_an_import_cycle_with_the_foundation() -> None:
    """A package importing its own modules from ``__init__`` is a harmless cycle; a cycle
    that spans the foundation and a feature is the coupling the composition root removed."""
    spanning = [
        c for c in import_cycles()
        if any(m.startswith("ragmon.monitor") for m in c) and any(m.startswith(FEATURES) for m in c)
    ]
    assert spanning == []


def test_the_composition_root_lists_every_feature_table_module() -> None:
    from ragmon.monitor.app import TABLE_MODULES, metadata

    declaring = {
        name for name, path in modules().items()
        if name.startswith(FEATURES) and "__tablename__" in path.read_text()
    }
    assert {m.__name__ for m in TABLE_MODULES} == declaring
    assert {"probe_runs", "reference_samples", "recall_baselines", "drift_statistics",
            "alert_states", "alert_notifications"} <= set(metadata().tables)


@pytest.mark.parametrize("registry", ["probes", "targets", "embedders", "sink", "drift method"])
def test_every_kind_has_a_typed_strict_params_model(registry: str) -> None:
    from ragmon.monitor.app import default_plugins

    plugins = default_plugins()
    kinds = getattr(plugins, registry, None) or plugins.other_kinds[registry]
    assert len(kinds) > 0
    for name, spec in kinds.items():
        assert spec.name == name
        assert spec.params.model_config.get("extra") == "forbid", name
