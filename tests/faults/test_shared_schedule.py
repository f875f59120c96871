"""Replicas share one schedule: three real `ragmon run` daemons on one PostgreSQL, six
probes every 2 s. Each (probe, slot) is run exactly once, counted from the store, with no
slot missing once every replica runs; every replica ran some slots and lost some claims (so
they really competed). With the claim broken (the unique key dropped), the same check sees
duplicates: the assertions can fail."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ragmon.monitor.store import Store

from .fleet_support import (
    fleet_config,
    recall_probe,
    slot_problems,
    start,
    stop,
    stored_runs,
    stored_slots,
    vector_index,
    wait_ready,
)

PROBES = [f"recall-{i}" for i in range(6)]
INTERVAL = 2.0
RUN_SECONDS = 30.0
REPLICAS = ("r1", "r2", "r3")


def run_fleet(url: str, folder: Path, seconds: float, *, broken_claim: bool = False
              ) -> tuple[datetime, datetime, dict[str, dict[str, float]]]:
    """Three replicas run for ``seconds`` once all are ready: (when all were ready, when
    they were stopped, per replica its claims lost and runs made, read from /metrics)."""
    vector_index(folder)
    probes = {name: recall_probe(every=f"{INTERVAL:g}s") for name in PROBES}
    replicas = []
    try:
        for name in REPLICAS:
            path, port = fleet_config(folder, url, name, probes)
            replicas.append(start(path, name, port, broken_claim=broken_claim))
        wait_ready(replicas)
        ready = datetime.now(UTC)
        time.sleep(seconds)
        seen = {r.name: {
            "lost": r.total("ragmon_probe_slots_skipped_total", reason="claimed_elsewhere"),
            "runs": r.total("ragmon_probe_runs_total"),
            "unavailable": r.total("ragmon_probe_slots_skipped_total",
                                   reason="store_unavailable"),
        } for r in replicas}
        stopped = datetime.now(UTC)
    finally:
        stop(replicas)
    return ready, stopped, seen


def test_three_replicas_run_each_slot_exactly_once(new_postgres_database: Any,
                                                   tmp_path: Path) -> None:
    url = new_postgres_database()
    ready, stopped, seen = run_fleet(url, tmp_path, RUN_SECONDS)
    runs = stored_runs(url)
    # Slots after every replica was up, and before the stop (a slot in flight then may be
    # given back unrun).
    since, until = ready + timedelta(seconds=INTERVAL), stopped - timedelta(seconds=2 * INTERVAL)
    problems = slot_problems(runs, PROBES, INTERVAL, since, until)
    assert problems == {"duplicate": [], "missing": []}
    in_window = [r for r in runs if since <= r.slot <= until]
    assert len(in_window) >= len(PROBES) * (RUN_SECONDS - 3 * INTERVAL) / INTERVAL * 0.9
    assert {r.status for r in runs} == {"ok"}
    by_replica = Counter(r.replica for r in in_window)
    share = {name: by_replica[name] / len(in_window) for name in REPLICAS}
    assert all(s > 0.15 for s in share.values()), share  # the load spread: about a third each
    for name in REPLICAS:  # each replica competed for slots and lost some
        assert seen[name]["lost"] > 0 and seen[name]["runs"] > 0, seen
        assert seen[name]["unavailable"] == 0, seen
    # The store agrees: one claim per run, finished with that run, by the replica that ran it.
    slots = {(s.probe, s.slot): s for s in stored_slots(url)}
    for r in in_window:
        claim = slots[(r.probe, r.slot)]
        assert claim.claimed_by == r.replica and claim.finished_at is not None


def test_a_broken_claim_is_caught_as_duplicate_runs(new_postgres_database: Any,
                                                    tmp_path: Path) -> None:
    """The mutation check: without the unique key on (probe, instance, slot) every replica
    runs every slot, and the check above reports the duplicates."""
    url = new_postgres_database()
    store = Store(url)
    store.migrate()
    with store.engine.begin() as conn:  # test-only DDL: the claim has nothing to conflict on
        conn.execute(sa.text("ALTER TABLE probe_slots DROP CONSTRAINT uq_probe_slots_key"))
    store.close()
    ready, stopped, _ = run_fleet(url, tmp_path, 8.0, broken_claim=True)
    since, until = ready + timedelta(seconds=INTERVAL), stopped - timedelta(seconds=2 * INTERVAL)
    problems = slot_problems(stored_runs(url), PROBES, INTERVAL, since, until)
    assert len(problems["duplicate"]) >= len(PROBES) * 2, problems
