"""Query traffic plumbing: the JSONL tail across partial lines, corrupt lines, rotation,
truncation and restarts; the reservoir's uniformity and bounded size; the drift tables on
SQLite and PostgreSQL; the daemon hook that mounts the endpoint and schedules the tail."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from scipy import stats

from ragmon.monitor.store import Store
from ragmon.probes.drift import state
from ragmon.probes.drift.ingest import install, poll_jsonl
from ragmon.probes.drift.state import Item, add_items, peek_window, reset_window
from ragmon.probes.drift.tables import DriftClusterShift, DriftStatistic
from ragmon.probes.references import save_reference
from tests.probes.drift.conftest import PROBE


def line(i: int) -> str:
    return json.dumps({"query": f"question {i}", "id": str(i)}) + "\n"


def ids(env) -> list[str]:
    return sorted((it.item_id for it in peek_window(env.store, PROBE).items), key=int)


def test_jsonl_tail_partial_corrupt_rotation_truncation_restart(drift_env, caplog) -> None:
    cfg = drift_env.config.probes[PROBE]
    path = Path(cfg.queries.jsonl)
    with open(path, "w") as fh:
        fh.write(line(0) + line(1) + "{corrupt\n" + '{"query": "half')
    logged: set = set()
    caplog.set_level(logging.WARNING, "ragmon.drift.ingest")
    assert poll_jsonl(drift_env.store, PROBE, cfg, logged) == 2
    assert ids(drift_env) == ["0", "1"]
    assert state.tail_state(drift_env.store, PROBE)["bad_lines"] == 1
    assert sum("corrupt line at byte" in r.message for r in caplog.records) == 1
    with open(path, "a") as fh:  # the half line is completed
        fh.write(' done", "id": "2"}\n')
    assert poll_jsonl(drift_env.store, PROBE, cfg, logged) == 1
    assert ids(drift_env) == ["0", "1", "2"]
    # Rotation: the app appends a last line to the old file, renames it, starts a new one.
    with open(path, "a") as fh:
        fh.write(line(3))
    os.replace(path, path.with_name(path.name + ".1"))
    with open(path, "w") as fh:
        fh.write(line(4))
    assert poll_jsonl(drift_env.store, PROBE, cfg, logged) == 2
    assert ids(drift_env) == ["0", "1", "2", "3", "4"]
    # Truncation in place (copytruncate): read again from the start.
    with open(path, "w") as fh:
        fh.write(line(5))
    assert poll_jsonl(drift_env.store, PROBE, cfg, logged) == 1
    # A restart (fresh process state) resumes at the stored offset: nothing read twice.
    assert poll_jsonl(drift_env.store, PROBE, cfg, set()) == 0
    assert ids(drift_env) == ["0", "1", "2", "3", "4", "5"]
    assert sum("corrupt line at byte" in r.message for r in caplog.records) == 1


def test_reservoir_is_uniform_and_bounded(drift_env) -> None:
    capacity, total = 100, 6000
    kept: list[int] = []
    for _ in range(8):
        for start in range(0, total, 1500):
            batch = [Item(text=None, vector=np.array([float(i)], np.float32), item_id=str(i))
                     for i in range(start, start + 1500)]
            add_items(drift_env.store, PROBE, batch, capacity)
        window = peek_window(drift_env.store, PROBE)
        assert len(window.items) == capacity and window.seen == total
        kept += [int(it.item_id) for it in window.items]
        reset_window(drift_env.store, PROBE, datetime.now(UTC))
    # Every item is equally likely to be kept: positions are uniform over the stream.
    assert stats.kstest(np.array(kept) / total, "uniform").pvalue > 0.001
    assert len(set(kept)) > 0.9 * len(kept)


def test_same_items_in_the_same_window_keep_the_same_sample(tmp_path: Path) -> None:
    """Two reservoirs (two replicas' stores, or a rerun) fed the same items for the same
    probe and window keep the same sample, however the items were batched; another
    configured seed or another window draws another sample."""
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    items = [Item(text=f"question {i}", item_id=str(i)) for i in range(3000)]

    def sample(name: str, batches: list[list[Item]], seed: int = 7,
               window_start: datetime = start) -> list[str | None]:
        store = Store(f"sqlite:///{tmp_path / name}.db")
        store.migrate()
        try:
            reset_window(store, PROBE, window_start)
            for batch in batches:
                add_items(store, PROBE, batch, 100, seed=seed)
            return [it.item_id for it in peek_window(store, PROBE).items]  # in slot order
        finally:
            store.close()

    kept = sample("one-batch", [items])
    assert len(set(kept)) == 100 and any(int(i) >= 100 for i in kept)  # replacements happened
    assert sample("again", [items]) == kept
    assert sample("three-batches", [items[:7], items[7:1500], items[1500:]]) == kept
    assert sample("twelve-batches", [items[i:i + 250] for i in range(0, 3000, 250)]) == kept
    assert sample("other-seed", [items], seed=8) != kept
    assert sample("next-window", [items], window_start=start + timedelta(hours=1)) != kept


def test_drift_tables_round_trip(store) -> None:
    """On SQLite and PostgreSQL: statistics, cluster shifts, reservoir, rolling reference."""
    now = datetime.now(UTC)
    row = DriftStatistic(probe="p", source="queries", method="clusters", window_start=now,
                         window_end=now, reference_id=None, n_reference=10, n_current=10,
                         statistic=0.25, p_value=0.01, threshold=None, drifted=True,
                         alarm=False, details={"alarm_state": {"recent": [True], "alarm": False}})
    shift = DriftClusterShift(direction="grew", rank=0, cluster=3, reference_share=0.1,
                              current_share=0.3, change=0.2, label="x",
                              examples=[{"text": "asyncio"}])
    [sid] = state.save_statistics(store, [row], {0: [shift]})
    assert state.previous_alarm_state(store, "p", "clusters")["recent"] == [True]
    assert state.cluster_shifts(store, sid)[0].examples == [{"text": "asyncio"}]
    add_items(store, "p", [Item("q", np.ones(3, np.float32), "1")], 5)
    assert peek_window(store, "p").items[0].vector.tolist() == [1.0, 1.0, 1.0]
    for i in range(3):
        save_reference(store, "p", "queries", "fp", np.full((4, 3), i, np.float32),
                             [f"{i}-{j}" for j in range(4)], details={"texts": ["t"] * 4})
    ref = state.rolling_reference(store, "p", "queries", now, size=6, seed=0)
    assert ref is not None and ref.vectors.shape == (6, 3) and len(ref.item_ids) == 6
    assert ref.details["windows"] == 3
    # A capture of a new pipeline (pinned, another fingerprint) restarts the rolling pool.
    save_reference(store, "p", "queries", "fp2", np.full((5, 3), 9, np.float32), [],
                         pinned=True)
    ref = state.rolling_reference(store, "p", "queries", now, size=6, seed=0)
    assert ref.embedder_fingerprint == "fp2" and ref.vectors.shape == (5, 3)
    assert ref.details["other_fingerprints"] == ["fp"]


class FakeScheduler:
    """Stands in for APScheduler here only to record the job the hook adds; the daemon
    tests run the real scheduler."""

    def __init__(self) -> None:
        self.jobs: list[tuple] = []

    def add_job(self, func, trigger, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.jobs.append((func, trigger, kwargs))


def test_install_mounts_ingest_and_schedules_the_tail(drift_env) -> None:
    class Daemon:
        config = drift_env.config
        context = drift_env.context
        store = drift_env.store
        scheduler = FakeScheduler()

    install(Daemon)
    assert "/ingest" in drift_env.context.http_routes
    [(job, trigger, kwargs)] = Daemon.scheduler.jobs
    assert trigger == "interval" and kwargs["id"] == f"drift-tail:{PROBE}"
    Path(drift_env.config.probes[PROBE].queries.jsonl).write_text(line(7))
    job()
    assert ids(drift_env) == ["7"]
