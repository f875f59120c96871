"""The JSONL tail under replicas: two real daemons see the same query log (a shared volume)
while the app appends to it. One replica at a time tails it, under a lease in the store;
the tailing replica is killed with SIGKILL half-way, and the other takes the lease over
when it runs out and goes on from the stored offset. Every line is counted exactly once:
none twice (two readers of one offset), none lost (the killed reader's last batch)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from ragmon.monitor.store import Store
from ragmon.monitor.store.models import Lease
from ragmon.probes.drift.tables import DriftReservoirItem, DriftReservoirState

from .fleet_support import fleet_config, start, stop, vector_index, wait_ready

LINES = 1600
CHUNK = 40


def append_lines(path: Path, done: threading.Event) -> None:
    """The app: 40 lines every 0.2 s, each with an id and an 8-d vector."""
    rng = np.random.default_rng(3)
    for first in range(0, LINES, CHUNK):
        with open(path, "a") as fh:
            for i in range(first, first + CHUNK):
                fh.write(json.dumps({"id": f"line-{i}", "query": f"query {i}",
                                     "vector": rng.normal(size=8).round(4).tolist()}) + "\n")
        time.sleep(0.2)
    done.set()


def counted(store: Store) -> tuple[int, Counter[str]]:
    """The window's count of lines read, and the ids it holds (all of them: the window's
    capacity is larger than the log)."""
    with store.session() as s:
        state = s.get(DriftReservoirState, ("qd", ""))
        ids = Counter(s.scalars(select(DriftReservoirItem.item_id).where(
            DriftReservoirItem.probe == "qd")))
    return (int(state.seen) if state is not None else 0), ids


def holder(store: Store) -> str | None:
    with store.session() as s:
        row = s.scalars(select(Lease).where(Lease.name == "drift-tail:qd")).first()
        return None if row is None else row.holder


def test_one_replica_tails_the_log_and_no_line_is_lost_or_counted_twice(
    new_postgres_database: Any, tmp_path: Path,
) -> None:
    url = new_postgres_database()
    vector_index(tmp_path)
    log = tmp_path / "queries.jsonl"
    log.touch()
    probes = {"qd": {"kind": "drift", "source": "queries", "embedder": "m", "every": "1h",
                     "jitter": "0s", "window_size": 5000, "min_samples": 5000,
                     "methods": ["centroid"], "queries": {"jsonl": str(log), "poll": "0.2s"}}}
    replicas = []
    store = Store(url)
    done = threading.Event()
    try:
        for name in ("r1", "r2"):
            path, port = fleet_config(tmp_path, url, name, probes,
                                      embedders={"m": {"kind": "sentence-transformers"}})
            replicas.append(start(path, name, port))
        wait_ready(replicas)
        writer = threading.Thread(target=append_lines, args=(log, done))
        writer.start()
        deadline = time.monotonic() + 60
        while counted(store)[0] < LINES // 3:
            assert time.monotonic() < deadline, "nothing was read"
            time.sleep(0.05)
        tailing = holder(store)
        victim = next((r for r in replicas if r.name == tailing), replicas[0])
        os.kill(victim.proc.pid, signal.SIGKILL)  # mid-way through the log
        victim.proc.wait(timeout=10)
        read_by_victim = counted(store)[0]
        writer.join(timeout=60)
        deadline = time.monotonic() + 30
        while counted(store)[0] < LINES and time.monotonic() < deadline:
            time.sleep(0.1)
        seen, ids = counted(store)
        now_tailing = holder(store)
    finally:
        done.set()
        store.close()
        stop(replicas)
    assert [i for i, n in ids.items() if n > 1] == []  # no line counted twice
    assert seen == LINES and set(ids) == {f"line-{i}" for i in range(LINES)}  # none lost
    assert 0 < read_by_victim < LINES  # the killed replica read part of the log ...
    survivor = next(r.name for r in replicas if r is not victim)
    assert tailing == victim.name and now_tailing == survivor  # ... and the other the rest
