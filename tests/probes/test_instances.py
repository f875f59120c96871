"""Per-probe state kept per (probe, instance), on SQLite and a real PostgreSQL: recall
baselines and pins, reference samples (canary and recall vectors), drift reservoirs and the
drift alarm state. Each sidecar (a ``Store`` handle with its ``deployment.instance``) sees
only its own; "" is the standalone replicas' shared history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from ragmon.monitor.store import RunRecord, Store
from ragmon.probes.drift.state import (
    Item,
    add_items,
    peek_window,
    previous_alarm_state,
    reset_window,
    save_statistics,
)
from ragmon.probes.drift.tables import DriftStatistic
from ragmon.probes.recall.history import find_baseline, keep_reference, pin_baseline
from ragmon.probes.references import latest_reference, save_reference

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
def pods(store_url: str, store: Store) -> Iterator[dict[str, Store]]:
    handles = {name: Store(store_url, instance=name) for name in ("pod-a", "pod-b")}
    handles[""] = store
    yield handles
    for name, handle in handles.items():
        if name:
            handle.close()


def recall_run(store: Store, verdict: str, minute: int) -> int:
    at = T0 + timedelta(minutes=minute)
    return store.record_run(RunRecord(
        probe="docs-recall", kind="recall", target="docs", started_at=at,
        finished_at=at + timedelta(seconds=2), status="ok", details={"verdict": verdict},
        golden_version="v1"))


def test_each_instance_compares_with_its_own_baseline(pods: dict[str, Store]) -> None:
    a_first = recall_run(pods["pod-a"], "healthy", 0)
    b_index = recall_run(pods["pod-b"], "index", 1)  # pod-b was never healthy
    recall_run(pods["pod-a"], "healthy", 2)
    b_healthy = recall_run(pods["pod-b"], "healthy", 3)
    b_later = recall_run(pods["pod-b"], "healthy", 4)
    found = {name: find_baseline(s, "docs-recall", "v1") for name, s in pods.items()}
    assert found[""] is None
    assert (found["pod-a"].run.id, found["pod-a"].how) == (a_first, "first healthy run")
    assert (found["pod-b"].run.id, found["pod-b"].how) == (b_healthy, "first healthy run")
    assert b_index != b_healthy

    # A pin belongs to the instance that ran the pinned run, whoever pins it.
    pin_baseline(pods[""], b_later)
    after = {name: find_baseline(s, "docs-recall", "v1") for name, s in pods.items()}
    assert (after["pod-b"].run.id, after["pod-b"].how) == (b_later, "pinned")
    assert after["pod-a"].run.id == a_first and after[""] is None


def test_reference_samples_are_per_instance(pods: dict[str, Store]) -> None:
    rng = np.random.default_rng(1)
    vectors = {name: rng.normal(size=(3, 8)).astype(np.float32) for name in pods}
    ids = {name: save_reference(s, "canary", "canary", "fp", vectors[name], ["x", "y", "z"])
           for name, s in pods.items()}
    for name, s in pods.items():
        ref = latest_reference(s, "canary", "canary")
        assert ref is not None and ref.id == ids[name]
        np.testing.assert_array_equal(ref.vectors, vectors[name])
    # Recall's query vectors: pod-a's steady vectors are found again, pod-b's are new rows.
    same = keep_reference(pods["pod-a"], "docs-recall", "recall-queries", "fp", ["q"],
                          vectors["pod-a"][:1])
    assert keep_reference(pods["pod-a"], "docs-recall", "recall-queries", "fp", ["q"],
                          vectors["pod-a"][:1]) == same
    assert keep_reference(pods["pod-b"], "docs-recall", "recall-queries", "fp", ["q"],
                          vectors["pod-a"][:1]) != same


def test_drift_reservoirs_are_per_instance(pods: dict[str, Store]) -> None:
    add_items(pods["pod-a"], "query-drift", [Item(text=f"a{i}") for i in range(5)], capacity=3)
    add_items(pods["pod-b"], "query-drift", [Item(text="b0")], capacity=3)
    windows = {name: peek_window(s, "query-drift") for name, s in pods.items()}
    assert {n: (w.seen, len(w.items)) for n, w in windows.items()} == {
        "pod-a": (5, 3), "pod-b": (1, 1), "": (0, 0)}
    assert [i.text for i in windows["pod-b"].items] == ["b0"]
    reset_window(pods["pod-a"], "query-drift", T0)
    assert peek_window(pods["pod-a"], "query-drift").items == []
    assert [i.text for i in peek_window(pods["pod-b"], "query-drift").items] == ["b0"]


def test_drift_alarm_state_is_per_instance(pods: dict[str, Store]) -> None:
    for name, streak in (("pod-a", 2), ("pod-b", 0)):
        save_statistics(pods[name], [DriftStatistic(
            probe="query-drift", source="queries", method="mmd", window_end=T0,
            n_reference=10, n_current=10, statistic=0.5, drifted=streak > 0, alarm=False,
            details={"alarm_state": {"streak": streak}})], {})
    assert previous_alarm_state(pods["pod-a"], "query-drift", "mmd") == {"streak": 2}
    assert previous_alarm_state(pods["pod-b"], "query-drift", "mmd") == {"streak": 0}
    assert previous_alarm_state(pods[""], "query-drift", "mmd") == {}


def test_a_reference_changed_by_one_bit_is_kept_as_a_new_sample(pods: dict[str, Store]) -> None:
    """keep_reference remembers the last vectors it hashed (a steady run skips the hash);
    a change of one bit, -0.0 for 0.0 or one ulp in one element, is still a new sample,
    and going back finds the stored one again only when it is the newest."""
    store = pods[""]
    vectors = np.random.default_rng(2).normal(size=(50, 16)).astype(np.float32)
    vectors[3, 4] = 0.0
    ids = [f"d{i}" for i in range(50)]
    first = keep_reference(store, "docs-recall", "recall-docs", "fp", ids, vectors)
    assert keep_reference(store, "docs-recall", "recall-docs", "fp", ids, vectors.copy()) \
        == first
    signed = vectors.copy()
    signed[3, 4] = -0.0
    ulp = vectors.copy()
    ulp[7, 1] = np.nextafter(ulp[7, 1], np.float32(np.inf))
    got = [keep_reference(store, "docs-recall", "recall-docs", "fp", ids, v)
           for v in (signed, signed, ulp, vectors)]
    assert got[0] not in (first, None) and got[1] == got[0]
    assert got[2] not in (first, got[0]) and got[3] not in (first, got[0], got[2])
    assert keep_reference(store, "docs-recall", "recall-docs", "fp", ids[::-1], vectors) \
        != got[3]  # the same vectors under other ids
