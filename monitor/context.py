"""What a probe run can reach: the config, the store, and shared embedders and targets.

Embedders and targets are built on first use and shared by every probe that names them,
so a model is loaded once per process however many probes use it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ragmon.monitor.config import RootConfig
from ragmon.monitor.embedders import Embedder
from ragmon.monitor.store import RunRecord, Store
from ragmon.monitor.store.claims import Claims
from ragmon.monitor.targets import VectorTarget

if TYPE_CHECKING:
    from ragmon.monitor.plugins import Plugins


class AfterRunHook(Protocol):
    """Called after every stored run; ``run_id`` is None when the run could not be stored."""

    def __call__(self, probe: str, record: RunRecord, run_id: int | None) -> None: ...


class ProbeContext:
    def __init__(self, config: RootConfig, store: Store, plugins: Plugins):
        self.config = config
        self.store = store
        self.plugins = plugins
        self._lock = threading.Lock()
        self._embedders: dict[str, Embedder] = {}
        self._targets: dict[str, VectorTarget] = {}
        # Extra HTTP endpoints (path prefix -> WSGI app) served beside /metrics, e.g. ingest.
        self.http_routes: dict[str, Callable[..., Any]] = {}
        # Called after every stored run as hook(probe_name, record, run_id); a hook that
        # raises is logged and counted, never stops the run or the daemon (alerts use this).
        self.after_run: list[AfterRunHook] = []
        # The daemon's claims in the shared schedule (None outside a daemon): jobs that one
        # replica at a time may run hold a lease through it (the JSONL tail).
        self.claims: Claims | None = None

    def embedder(self, name: str) -> Embedder:
        with self._lock:
            if name not in self._embedders:
                entry = self.config.embedders[name]
                self._embedders[name] = self.plugins.embedders.build(entry.kind, name, entry)
            return self._embedders[name]

    def target(self, name: str) -> VectorTarget:
        with self._lock:
            if name not in self._targets:
                entry = self.config.targets[name]
                self._targets[name] = self.plugins.targets.build(entry.kind, name, entry)
            return self._targets[name]

    def embedder_for(self, probe_config: Any) -> tuple[str, Embedder]:
        """The probe's own embedder, else its target's."""
        name = getattr(probe_config, "embedder", None)
        if name is None and getattr(probe_config, "target", None):
            name = self.config.targets[probe_config.target].embedder
        if name is None:
            raise ValueError("neither the probe nor its target names an embedder")
        return name, self.embedder(name)

    def successor(self, config: RootConfig) -> tuple[ProbeContext, list[VectorTarget]]:
        """The context of a reloaded ``config``: the same store, HTTP routes and after-run
        hooks, and every embedder and target whose entry did not change (a loaded model
        stays loaded). Also returns the targets it does not keep: close them once the runs
        that use this context have ended."""
        new = ProbeContext(config, self.store, self.plugins)
        new.http_routes = self.http_routes
        new.after_run = self.after_run
        retired = []
        with self._lock:
            for name, embedder in self._embedders.items():
                if config.embedders.get(name) == self.config.embedders[name]:
                    new._embedders[name] = embedder
            for name, target in self._targets.items():
                if config.targets.get(name) == self.config.targets[name]:
                    new._targets[name] = target
                else:
                    retired.append(target)
        return new, retired

    def loaded_embedders(self) -> list[str]:
        return [n for n, e in self._embedders.items() if getattr(e, "loaded", True)]

    def close(self) -> None:
        for target in self._targets.values():
            target.close()
