"""Drift under replicas: two real daemons share one reservoir, and the app posts its query
traffic to both. Every replica ingests; only the replica that claimed a slot closes the
window, once. So each window spans one interval and holds the configured number of rows
(when every replica ran every slot, each of them closed the window: once per replica per
interval), and the alarm count over a null stream stays within budget.

The budget here is one false alarm per hour at a 2 s interval: a per-window alarm rate of
1/1800 under the 2-of-3 persistence rule. Over the ~10 windows of this test the expected
count is about 0.006, so the test allows none (by chance it fails about once in 170 runs
if the calibration holds)."""

from __future__ import annotations

import json
import statistics
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from ragmon.monitor.store import Store
from ragmon.probes.drift.tables import DriftStatistic

from .fleet_support import (
    Replica,
    fleet_config,
    slot_problems,
    start,
    stop,
    stored_runs,
    vector_index,
    wait_ready,
)

INTERVAL = 2.0
WINDOW = 40
RUN_SECONDS = 20.0


def post_null_traffic(replicas: list[Replica], stop_posting: threading.Event,
                      accepted: dict[str, int]) -> None:
    """Eight 384-d (the embedder's dimension) standard normal vectors to each daemon in
    turn, every 0.05 s (or as fast as the daemons take them), from one unchanging
    distribution: many times a window per interval."""
    rng = np.random.default_rng(11)
    while not stop_posting.is_set():
        for r in replicas:
            body = json.dumps({"vectors": rng.normal(size=(8, 384)).round(4).tolist()})
            req = urllib.request.Request(f"http://127.0.0.1:{r.port}/ingest/qd",
                                         data=body.encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as response:
                accepted[r.name] += 8 if response.status == 200 else 0
        time.sleep(0.05)


def test_two_replicas_close_each_window_once(new_postgres_database: Any,
                                             tmp_path: Path) -> None:
    url = new_postgres_database()
    vector_index(tmp_path)
    probes = {"qd": {"kind": "drift", "source": "queries", "embedder": "m",
                     "every": f"{INTERVAL:g}s", "jitter": "0s", "window_size": WINDOW,
                     "min_samples": 20, "methods": ["mmd"], "reference": {"size": 2 * WINDOW},
                     "alarm": {"false_alarms": 1, "per": "1h"}}}
    replicas: list[Replica] = []
    accepted = {"r1": 0, "r2": 0}
    stop_posting = threading.Event()
    poster: threading.Thread | None = None
    try:
        for name in ("r1", "r2"):
            path, port = fleet_config(tmp_path, url, name, probes,
                                      embedders={"m": {"kind": "sentence-transformers"}})
            replicas.append(start(path, name, port))
        wait_ready(replicas)
        poster = threading.Thread(target=post_null_traffic,
                                  args=(replicas, stop_posting, accepted))
        poster.start()
        deadline = time.monotonic() + 180  # each replica loads the model in its first run
        while {r.replica for r in stored_runs(url)} != {"r1", "r2"}:
            assert time.monotonic() < deadline, "a replica never ran the probe"
            time.sleep(0.5)
        begun = datetime.now(UTC)
        time.sleep(RUN_SECONDS)
        stopped = datetime.now(UTC)
    finally:
        stop_posting.set()
        if poster is not None:
            poster.join(timeout=60)  # before the daemons stop under a request
        stop(replicas)
    store = Store(url)
    with store.session() as s:
        windows = list(s.scalars(select(DriftStatistic).where(DriftStatistic.method == "mmd")
                                 .order_by(DriftStatistic.window_end)).all())
    store.close()
    assert accepted["r1"] > 0 and accepted["r2"] > 0  # both replicas ingested
    runs = stored_runs(url)
    since = begun + timedelta(seconds=2 * INTERVAL)
    until = stopped - timedelta(seconds=2 * INTERVAL)
    assert slot_problems(runs, ["qd"], INTERVAL, since, until) == {"duplicate": [],
                                                                   "missing": []}
    assert {r.replica for r in runs if since <= r.slot <= until} == {"r1", "r2"}
    compared = [w for w in windows if w.window_start is not None and w.window_start >= since]
    assert len(compared) >= (RUN_SECONDS - 4 * INTERVAL) / INTERVAL
    spans = [(w.window_end - w.window_start).total_seconds() for w in compared]
    sizes = [w.n_current for w in compared]
    assert set(sizes) == {WINDOW}, (sizes, spans)  # the configured size, every time
    assert 0.8 * INTERVAL <= statistics.median(spans) <= 1.25 * INTERVAL, spans
    assert min(spans) >= 0.5 * INTERVAL, spans  # never closed by a second replica's run
    assert sum(w.alarm for w in windows) == 0  # within the budget (see the module docstring)
