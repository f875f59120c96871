"""Which kernel computed MMD² is exported: above ``max_exact`` pooled rows the statistic
comes from random Fourier features, and /metrics says so."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from ragmon.monitor.metrics import StoreCollector
from ragmon.probes.drift.state import Item, add_items
from tests.probes.drift.conftest import PROBE, DriftEnv

WINDOW = 100


def fill(env: DriftEnv, rows: np.ndarray) -> None:
    w = env.windows
    items = [Item(w.texts[r], w.vectors[r], str(r)) for r in rows]
    add_items(env.store, PROBE, items, WINDOW, seed=0)


def run_until_compared(env: DriftEnv, windows: Iterator[np.ndarray]) -> dict[str, Any]:
    """Runs on successive windows until one is compared (the first ones build the
    reference), and returns that run's details."""
    for rows in windows:
        fill(env, rows)
        result, _ = env.run_probe()
        assert result.status == "ok", result.error
        if result.details["verdict"] == "compared":
            return result.details
    raise AssertionError("no window was compared")


def kernel_samples(env: DriftEnv) -> dict[str, Any]:
    registry = CollectorRegistry()
    registry.register(StoreCollector(env.store, env.config, env.config.plugins.metric_specs()))
    labels = {"probe": PROBE, "kind": "drift", "target": "docs", "source": "queries",
              "method": "mmd"}
    return {k: registry.get_sample_value("ragmon_drift_kernel_info", {**labels, "kernel": k})
            for k in ("exact", "rff")}


def test_kernel_is_exported_and_follows_the_pooled_size(drift_env: DriftEnv) -> None:
    env = drift_env
    env.probe.update(methods=["mmd"], window_size=WINDOW, reference={"size": WINDOW}, timeout="600s",
                     method_params={"mmd": {"max_exact": 150, "rff_features": 256}})
    env.reload()
    order = np.random.default_rng(5).permutation(env.windows.pool)
    windows = (order[i:i + WINDOW] for i in range(0, len(order) - WINDOW, WINDOW))
    details = run_until_compared(env, windows)  # 200 pooled rows > 150
    mmd = details["methods"]["mmd"]["details"]
    assert (mmd["kernel"], mmd["rff_features"], mmd["max_exact"]) == ("rff", 256, 150)
    assert kernel_samples(env) == {"exact": None, "rff": 1.0}

    env.probe["method_params"] = {"mmd": {"max_exact": 20_000}}
    env.reload()
    details = run_until_compared(env, windows)
    assert details["methods"]["mmd"]["details"]["kernel"] == "exact"
    assert kernel_samples(env) == {"exact": 1.0, "rff": None}
