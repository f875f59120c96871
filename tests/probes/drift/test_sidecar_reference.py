"""A drift probe of a sidecar with no reference of its own (a pod a rollout just created)
compares its first window with the fleet's pinned reference, then keeps its own; the other
pod's reference is left as it was. Real MiniLM windows, FAISS and runner, on SQLite and a real
PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ragmon.monitor.store import Store
from ragmon.probes.drift import state
from ragmon.probes.references import ReferenceSample
from tests.probes.drift.conftest import PROBE, DriftEnv, Windows


def as_pod(env: DriftEnv, instance: str) -> None:
    """The env's daemon becomes the sidecar of pod ``instance``."""
    env.store.close()
    env.store = Store(env.store_url, instance=instance)
    env.reload()


def feed(env: DriftEnv, rows: np.ndarray) -> None:
    w = env.windows
    state.add_items(env.store, PROBE, [state.Item(w.texts[r], w.vectors[r], str(r))
                                       for r in rows], capacity=400)


def test_a_new_pod_compares_with_the_fleets_pinned_reference(
        tmp_path: Path, minilm: Any, windows: Windows, store_url: str, store: Store) -> None:
    env = DriftEnv(tmp_path, minilm, windows, store_url=store_url, window_size=100,
                   min_samples=50)
    try:
        order = np.random.default_rng(0).permutation(windows.pool)
        as_pod(env, "pod-a")
        feed(env, order[:100])
        first, _ = env.run_probe()
        assert first.details["verdict"] == "reference captured", first.error
        with env.store.session() as s:
            before = {r.id: r.n for r in s.query(ReferenceSample)}
        as_pod(env, "pod-b")
        feed(env, order[100:200])
        result, _ = env.run_probe()
        assert result.status == "ok", result.error
        assert result.details["verdict"] == "compared"
        assert result.details["reference_from_instance"] == "pod-a"
        assert result.details["reference_id"] in before
        with env.store.session() as s:
            rows = {r.id: (r.instance, r.n, r.pinned) for r in s.query(ReferenceSample)}
        assert {i: n for i, (_, n, _) in rows.items() if i in before} == before  # untouched
        (own,) = [v for i, v in rows.items() if i not in before]
        assert own == ("pod-b", 100, True)
        feed(env, order[200:300])
        again, _ = env.run_probe()
        assert "reference_from_instance" not in again.details
        assert again.details["reference_id"] not in before
    finally:
        env.close()
