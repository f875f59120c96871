"""Failover. A replica killed with SIGKILL while it holds a slot (claimed, its run not
stored) leaves the claim to run out; after the lease one of the two survivors takes the
slot over and runs it, the run row naming the survivor; no slot runs twice, and nobody ran
the slot while the dead replica's lease held it. And the store's side: a statement past
``store.statement_timeout`` fails with what to do, and a daemon outlives a restart of its
PostgreSQL server."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from ragmon.monitor.errors import StoreError, StoreUnavailable
from ragmon.monitor.http import http_get
from ragmon.monitor.store import Store
from ragmon.monitor.store.models import ProbeSlot

from ..conftest import create_database
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

INTERVAL = 2.0
JITTER, TIMEOUT, GRACE = 1.5, 3.0, 1.0
LEASE = JITTER + TIMEOUT + GRACE


def held_by(store: Store, replica: str) -> ProbeSlot | None:
    """A slot ``replica`` has claimed and not finished, if any."""
    with store.session() as s:
        return s.scalars(select(ProbeSlot).where(
            ProbeSlot.claimed_by == replica, ProbeSlot.finished_at.is_(None))).first()


def test_a_killed_replicas_slot_is_taken_over_after_its_lease(new_postgres_database: Any,
                                                              tmp_path: Path) -> None:
    url = new_postgres_database()
    vector_index(tmp_path)
    probes = {"docs": recall_probe(every=f"{INTERVAL:g}s", jitter=f"{JITTER:g}s",
                                   timeout=f"{TIMEOUT:g}s")}
    replicas = []
    store = Store(url)
    try:
        for name in ("r1", "r2", "r3"):
            path, port = fleet_config(tmp_path, url, name, probes,
                                      scheduler={"claim_grace": f"{GRACE:g}s"})
            replicas.append(start(path, name, port))
        wait_ready(replicas)
        victim, survivors = replicas[0], replicas[1:]
        deadline = time.monotonic() + 60
        while (held := held_by(store, victim.name)) is None:
            assert time.monotonic() < deadline, "r1 never held a slot"
            time.sleep(0.02)
        os.kill(victim.proc.pid, signal.SIGKILL)
        killed_at = datetime.now(UTC)
        victim.proc.wait(timeout=10)
        time.sleep(LEASE + 3 * INTERVAL)
        taken = sum(r.total("ragmon_probe_slots_taken_over_total") for r in survivors)
        stopped = datetime.now(UTC)
    finally:
        store.close()
        stop(replicas)
    assert held.finished_at is None and held.lease_until > killed_at  # killed holding it
    runs = stored_runs(url)
    again = [r for r in runs if r.slot == held.slot]
    assert len(again) == 1, again  # run once, by a survivor, after the lease
    assert again[0].replica in ("r2", "r3") and again[0].status == "ok"
    assert again[0].started_at >= held.lease_until
    assert again[0].started_at - held.lease_until < timedelta(seconds=INTERVAL + 2)
    slot = next(s for s in stored_slots(url) if s.slot == held.slot)
    assert (slot.claimed_by, slot.attempts) == (again[0].replica, 2)
    assert taken == 1
    problems = slot_problems(runs, ["docs"], INTERVAL, held.slot,
                             stopped - timedelta(seconds=2 * LEASE))
    assert problems == {"duplicate": [], "missing": []}


def test_a_statement_past_the_timeout_fails_with_what_to_do(postgres_url: str) -> None:
    store = Store(postgres_url, statement_timeout=0.2)
    try:
        with pytest.raises(StoreError) as failed:
            with store.session() as s:
                s.execute(text("SELECT pg_sleep(2)"))
        message = str(failed.value)
        assert "ran past store.statement_timeout" in message and "raise" in message, message
        assert not isinstance(failed.value, StoreUnavailable)
        with store.session() as s:  # the connection is still good afterwards
            assert s.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        store.close()


def test_a_replica_survives_a_postgresql_restart(tmp_path: Path) -> None:
    """A `ragmon run` daemon on its own PostgreSQL server, which is restarted under it:
    the daemon keeps running (connections are checked before use) and stores runs again
    once the server is back, without a restart of its own."""
    import pgserver
    from pgserver._commands import pg_ctl

    server = pgserver.get_server(tmp_path / "pg", cleanup_mode="stop")
    try:
        url, _ = create_database(server.get_uri())
        vector_index(tmp_path)
        path, port = fleet_config(tmp_path, url, "r1", {"docs": recall_probe(every="1s")},
                                  store={"pool_size": 2, "max_overflow": 1})
        replica = start(path, "r1", port)
        try:
            wait_ready([replica])
            deadline = time.monotonic() + 60
            while len(stored_runs(url)) < 2:
                assert time.monotonic() < deadline, "no runs before the restart"
                time.sleep(0.2)
            pg_ctl(["-w", "-m", "fast", "-l", str(server.log), "restart"],
                   pgdata=server.pgdata, user=server.system_user, timeout=60)
            restarted = datetime.now(UTC)
            deadline = time.monotonic() + 30
            while not [r for r in stored_runs(url) if r.started_at > restarted]:
                assert replica.proc.poll() is None, replica.log.read_text()[-3000:]
                assert time.monotonic() < deadline, "no run stored after the restart"
                time.sleep(0.2)
            assert http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200
        finally:
            stop([replica])
    finally:
        server.cleanup()
