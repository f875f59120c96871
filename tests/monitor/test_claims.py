"""Slot claims and leases on SQLite and a real PostgreSQL: one winner per slot, sidecars
never claiming each other's slots, takeover after the lease only, a run whose claim was
taken over is not stored, timer jobs (retention) run once per period across replicas, and
the slot a fire belongs to."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select

from ragmon.monitor.errors import ClaimLost
from ragmon.monitor.slots import SharedSchedule, slot_at
from ragmon.monitor.store import RunRecord, Store
from ragmon.monitor.store.claims import Claims
from ragmon.monitor.store.models import ProbeRun

SLOT = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def record(slot: datetime, replica: str) -> RunRecord:
    now = datetime.now(UTC)
    return RunRecord("p", "canary", None, now, now, "ok", replica=replica, slot=slot)


def test_one_replica_wins_a_slot_and_sidecars_each_have_their_own(store: Store) -> None:
    a, b = Claims(store, "a"), Claims(store, "b")
    won = a.claim("p", SLOT, 60)
    assert won is not None and (won.replica, won.attempt) == ("a", 1)
    assert b.claim("p", SLOT, 60) is None
    assert b.claim("p", SLOT + timedelta(minutes=5), 60) is not None  # the next slot
    pod1, pod2 = Claims(store, "a", instance="pod-1"), Claims(store, "b", instance="pod-2")
    assert pod1.claim("p", SLOT, 60) is not None and pod2.claim("p", SLOT, 60) is not None


def test_a_slot_is_taken_over_only_after_its_lease_and_the_loser_stores_nothing(
    store: Store,
) -> None:
    a, b = Claims(store, "a"), Claims(store, "b")
    held = a.claim("p", SLOT, 0.3)
    assert held is not None
    since = SLOT - timedelta(hours=1)
    assert b.take_over("p", since, 60) is None  # the lease still holds
    time.sleep(0.4)
    taken = b.take_over("p", since, 60)
    assert taken is not None and (taken.replica, taken.attempt, taken.slot) == ("b", 2, SLOT)
    assert Claims(store, "c").take_over("p", since, 60) is None  # one taker
    with pytest.raises(ClaimLost, match="ran out before the run was stored"):
        store.record_run(record(SLOT, "a"), lambda s, run_id: a.finish(s, held, run_id))
    run_id = store.record_run(record(SLOT, "b"), lambda s, run_id: b.finish(s, taken, run_id))
    with store.session() as s:
        rows = s.execute(select(ProbeRun.id, ProbeRun.replica)).all()
    assert [tuple(r) for r in rows] == [(run_id, "b")]  # the loser's run is not stored
    time.sleep(0.1)
    assert Claims(store, "c").take_over("p", since, 60) is None  # finished: never again


def test_a_released_slot_is_taken_over_at_once(store: Store) -> None:
    a, b = Claims(store, "a"), Claims(store, "b")
    held = a.claim("p", SLOT, 600)
    assert held is not None
    a.release(held)  # the daemon stopped before running it
    assert b.take_over("p", SLOT - timedelta(hours=1), 60) is not None


def test_a_lease_has_one_holder_until_it_runs_out(store: Store) -> None:
    a, b = Claims(store, "a"), Claims(store, "b")
    assert a.acquire("drift-tail:q", 0.3) and a.acquire("drift-tail:q", 0.3)  # renewed
    assert not b.acquire("drift-tail:q", 0.3)
    assert Claims(store, "b", instance="pod-2").acquire("drift-tail:q", 0.3)  # its own
    time.sleep(0.4)
    assert b.acquire("drift-tail:q", 5) and b.holder("drift-tail:q") == "b"
    assert not a.acquire("drift-tail:q", 5)
    b.give_up("drift-tail:q")
    assert a.acquire("drift-tail:q", 5)


def test_retention_runs_once_per_period_across_replicas(store: Store, tmp_path: Any) -> None:
    from ragmon.monitor.app import load_config

    path = tmp_path / "c.yaml"
    path.write_text("probes: {}\n")
    config = load_config(path, environ={})
    ran: list[str] = []
    go = threading.Barrier(4)

    def replica(name: str) -> None:
        schedule = SharedSchedule(lambda: config, None, Claims(store, name),  # type: ignore[arg-type]
                                  CollectorRegistry(), threading.Event())
        go.wait()
        schedule.run_job("retention", 3600, lambda: ran.append(name))

    threads = [threading.Thread(target=replica, args=(f"r{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ran) == 1
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(ProbeRun)) == 0


@pytest.mark.parametrize(("schedule", "now", "slot"), [
    ({"every": "30s"}, "10:00:59.9", "10:00:30"),
    ({"every": "30s"}, "10:01:00", "10:01:00"),
    ({"every": "7s"}, "10:00:00", "09:59:57"),  # counted from 2000-01-01, not the hour
    ({"cron": "*/15 * * * *"}, "10:29:59", "10:15:00"),
    ({"cron": "0 9 * * 1-5"}, "10:00:00", "09:00:00"),  # Tuesday
])
def test_slot_of_a_fire(schedule: dict[str, str], now: str, slot: str, tmp_path: Any) -> None:
    import yaml

    from ragmon.monitor.app import load_config
    from ragmon.monitor.slots import probe_trigger

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"embedders": {"e": {"kind": "sentence-transformers"}},
                                    "probes": {"p": {"kind": "canary", "embedder": "e",
                                                     **schedule}}}))
    trigger = probe_trigger(load_config(path, environ={}).probes["p"])
    day = "2026-12-01T"
    expected = datetime.fromisoformat(day + slot + "+00:00")
    assert slot_at(trigger, datetime.fromisoformat(day + now + "+00:00")) == expected
    assert trigger.get_next_fire_time(None, expected) == expected  # the scheduler agrees
