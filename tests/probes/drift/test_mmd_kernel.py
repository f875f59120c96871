"""Which kernel computed MMD² is exported: above ``max_exact`` pooled rows the statistic
comes from random Fourier features, and /metrics says so."""

from __future__ import annotations

from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from ragmon.monitor.metrics import StoreCollector
from ragmon.probes.drift.state import Item, add_items
from tests.probes.drift.conftest import PROBE, DriftEnv


def fill(env: DriftEnv, rows: np.ndarray) -> None:
    w = env.windows
    items = [Item(w.texts[r], w.vectors[r], str(r)) for r in rows]
    add_items(env.store, PROBE, items, 400, seed=0)


def kernel_samples(env: DriftEnv) -> dict[str, Any]:
    registry = CollectorRegistry()
    registry.register(StoreCollector(env.store, env.config, env.config.plugins.metric_specs()))
    labels = {"probe": PROBE, "kind": "drift", "target": "docs", "source": "queries",
              "method": "mmd"}
    return {k: registry.get_sample_value("ragmon_drift_kernel_info", {**labels, "kernel": k})
            for k in ("exact", "rff")}


def test_kernel_is_exported_and_follows_the_pooled_size(drift_env: DriftEnv) -> None:
    env = drift_env
    env.probe.update(methods=["mmd"], method_params={"mmd": {"max_exact": 300,
                                                             "rff_features": 256}})
    env.reload()
    order = np.random.default_rng(5).permutation(env.windows.pool)
    fill(env, order[:200])
    result, _ = env.run_probe()  # captures the reference
    assert result.details["verdict"] == "reference captured"
    fill(env, order[200:400])
    result, _ = env.run_probe()  # 400 pooled rows > 300
    assert result.status == "ok", result.error
    assert result.details["methods"]["mmd"]["details"]["kernel"] == "rff"
    assert kernel_samples(env) == {"exact": None, "rff": 1.0}

    env.probe["method_params"] = {"mmd": {"max_exact": 20_000}}
    env.reload()
    fill(env, order[400:600])
    result, _ = env.run_probe()
    assert result.details["methods"]["mmd"]["details"]["kernel"] == "exact"
    assert kernel_samples(env) == {"exact": 1.0, "rff": None}
