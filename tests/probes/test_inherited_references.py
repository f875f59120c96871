"""A sidecar without a reference of its own compares with the fleet's, on SQLite and a real
PostgreSQL: a pod replaced by a rollout (a new ``deployment.instance``, its pod name) catches
an embedding change the rollout shipped on its first run, instead of capturing the new
pipeline as its reference. It then keeps its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from prometheus_client import CollectorRegistry

from ragmon.monitor.app import load_config
from ragmon.monitor.context import ProbeContext
from ragmon.monitor.runner import Runner
from ragmon.monitor.store import RunRecord, Store
from ragmon.probes.drift.state import pinned_reference, rolling_reference
from ragmon.probes.recall.history import find_baseline, pin_baseline
from ragmon.probes.references import save_reference

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
def pods(store_url: str, store: Store) -> Iterator[dict[str, Store]]:
    handles = {name: Store(store_url, instance=name) for name in ("pod-a", "pod-b", "pod-c")}
    handles[""] = store
    yield handles
    for name, handle in handles.items():
        if name:
            handle.close()


def run_canary(tmp_path: Path, store_url: str, instance: str, **embedder: Any) -> Any:
    """One canary run of a sidecar, through the real runner, embedder and store."""
    cfg = {
        "store": {"url": store_url},
        "deployment": {"mode": "sidecar", "instance": instance},
        "embedders": {"e": {"kind": "sentence-transformers", "model": "all-MiniLM-L6-v2",
                            **embedder}},
        "probes": {"canary": {"kind": "canary", "embedder": "e", "every": "1m",
                              "timeout": "5m"}},
    }
    path = tmp_path / "ragmon.yaml"
    path.write_text(yaml.safe_dump(cfg))
    config = load_config(path, environ={})
    store = Store(store_url, instance=instance)
    context = ProbeContext(config, store, config.plugins)
    try:
        result, run_id = Runner(context, CollectorRegistry(), context.plugins.probes).run("canary")
    finally:
        context.close()
        store.close()
    assert run_id is not None and result.status == "ok", result.error
    return result


def render_canary(tmp_path: Path, store_url: str, result: Any) -> str:
    config = load_config(tmp_path / "ragmon.yaml", environ={})
    store = Store(store_url)
    context = ProbeContext(config, store, config.plugins)
    try:
        runner = Runner(context, CollectorRegistry(), context.plugins.probes)
        return runner.probes["canary"].render(result)
    finally:
        context.close()
        store.close()


def changed(result: Any) -> float:
    return {name: value for name, _, value in result.values}["canary_changed"]


def test_a_new_pod_catches_the_change_its_rollout_shipped(tmp_path: Path) -> None:
    """On SQLite (four real embedder loads): the lookup itself runs on both stores in the
    drift tests below and in tests/probes/drift/test_sidecar_reference.py."""
    store_url = f"sqlite:///{tmp_path / 'ragmon.db'}"
    init = Store(store_url)
    init.migrate()
    init.close()
    old = run_canary(tmp_path, store_url, "pod-a")
    assert old.details == {"reference": "captured", "reason": "first run"}
    # The rollout replaces pod-a by pod-b, with a shorter truncation length.
    new = run_canary(tmp_path, store_url, "pod-b", max_seq_length=32)
    assert new.details["verdict"] == "changed" and changed(new) == 1
    assert new.details["reference_from_instance"] == "pod-a"
    assert new.details["fingerprint_diff"]["max_seq_length"] == [256, 32]
    assert "compared with instance 'pod-a'" in render_canary(tmp_path, store_url, new)
    # ... and captured its own: the next run compares with it.
    again = run_canary(tmp_path, store_url, "pod-b", max_seq_length=32)
    assert again.details["verdict"] == "unchanged" and "reference_from_instance" not in \
        again.details
    # A later pod of the same pipeline is unchanged against the fleet's newest reference.
    same = run_canary(tmp_path, store_url, "pod-c", max_seq_length=32)
    assert same.details["verdict"] == "unchanged" and changed(same) == 0
    assert same.details["reference_from_instance"] == "pod-b"


def recall_run(store: Store, verdict: str, minute: int) -> int:
    at = T0 + timedelta(minutes=minute)
    return store.record_run(RunRecord(
        probe="docs-recall", kind="recall", target="docs", started_at=at,
        finished_at=at + timedelta(seconds=2), status="ok", details={"verdict": verdict},
        golden_version="v1"))


def test_a_new_pod_compares_with_the_fleets_recall_baseline(pods: dict[str, Store]) -> None:
    a_first = recall_run(pods["pod-a"], "healthy", 0)
    recall_run(pods["pod-a"], "healthy", 1)
    found = find_baseline(pods["pod-b"], "docs-recall", "v1")
    assert found is not None and found.run.id == a_first
    assert (found.from_instance, found.how) == ("pod-a", "first healthy run")
    pinned = recall_run(pods["pod-c"], "healthy", 2)
    pin_baseline(pods["pod-c"], pinned)  # a pin anywhere is the fleet's reference
    found = find_baseline(pods["pod-b"], "docs-recall", "v1")
    assert found is not None and (found.run.id, found.from_instance) == (pinned, "pod-c")
    # pod-b's first run found the embedding changed: not a baseline; the next compares again
    recall_run(pods["pod-b"], "embedding", 3)
    assert find_baseline(pods["pod-b"], "docs-recall", "v1").from_instance == "pod-c"
    own = recall_run(pods["pod-b"], "healthy", 4)
    found = find_baseline(pods["pod-b"], "docs-recall", "v1")
    assert found is not None and (found.run.id, found.from_instance) == (own, None)
    assert find_baseline(pods[""], "docs-recall", "v1") is None  # standalone: its own only


def test_a_new_pod_compares_with_the_fleets_drift_reference(pods: dict[str, Store]) -> None:
    rng = np.random.default_rng(3)
    windows = {n: rng.normal(size=(4, 8)).astype(np.float32) for n in ("old", "pin", "new")}
    save_reference(pods["pod-a"], "query-drift", "queries", "fp", windows["old"], list("abcd"))
    pin = save_reference(pods["pod-a"], "query-drift", "queries", "fp", windows["pin"],
                         list("abcd"), pinned=True)
    save_reference(pods["pod-c"], "query-drift", "queries", "fp", windows["new"], list("abcd"))
    ref = pinned_reference(pods["pod-b"], "query-drift", "queries")
    assert ref is not None and (ref.id, ref.instance) == (pin, "pod-a")
    since = datetime.now(UTC) - timedelta(hours=1)
    rolling = rolling_reference(pods["pod-b"], "query-drift", "queries", since, 10, 0)
    assert rolling is not None and rolling.instance == "pod-c"
    np.testing.assert_array_equal(rolling.vectors, windows["new"])
    own = save_reference(pods["pod-b"], "query-drift", "queries", "fp", windows["new"],
                         list("abcd"), pinned=True)
    ref = pinned_reference(pods["pod-b"], "query-drift", "queries")
    assert ref is not None and (ref.id, ref.instance) == (own, "pod-b")
    assert pinned_reference(pods[""], "query-drift", "queries") is None
