"""What a probe run can reach: the config, the store, and shared embedders and targets.

Embedders and targets are built on first use and shared by every probe that names them,
so a model is loaded once per process however many probes use it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ragmon.monitor.embedders import Embedder, build_embedder
from ragmon.monitor.store import Store
from ragmon.monitor.targets import VectorTarget, build_target


class ProbeContext:
    def __init__(self, config: Any, store: Store):
        self.config = config
        self.store = store
        self._lock = threading.Lock()
        self._embedders: dict[str, Embedder] = {}
        self._targets: dict[str, VectorTarget] = {}
        # Extra HTTP endpoints (path prefix -> WSGI app) served beside /metrics, e.g. ingest.
        self.http_routes: dict[str, Callable[..., Any]] = {}
        # Called after every stored run as hook(probe_name, record, run_id); a hook that
        # raises is logged and counted, never stops the run or the daemon (alerts use this).
        self.after_run: list[Callable[..., None]] = []

    def embedder(self, name: str) -> Embedder:
        with self._lock:
            if name not in self._embedders:
                self._embedders[name] = build_embedder(name, self.config.embedders[name])
            return self._embedders[name]

    def target(self, name: str) -> VectorTarget:
        with self._lock:
            if name not in self._targets:
                self._targets[name] = build_target(name, self.config.targets[name])
            return self._targets[name]

    def embedder_for(self, probe_config: Any) -> tuple[str, Embedder]:
        """The probe's own embedder, else its target's."""
        name = getattr(probe_config, "embedder", None)
        if name is None and getattr(probe_config, "target", None):
            name = self.config.targets[probe_config.target].embedder
        if name is None:
            raise ValueError("neither the probe nor its target names an embedder")
        return name, self.embedder(name)

    def loaded_embedders(self) -> list[str]:
        return [n for n, e in self._embedders.items() if getattr(e, "loaded", True)]

    def close(self) -> None:
        for target in self._targets.values():
            target.close()
