"""The daemon-side wiring: the after-run hook hands evaluation to its own thread, so a probe
never waits on alerting, even when another replica holds the alert rows locked."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
from alert_support import FAST_DELIVERY, T0, Receiver, alerts_config, minutes, recall_run

from ragmon.alerts.metrics import AlertStats
from ragmon.alerts.runtime import AlertsRuntime
from ragmon.monitor.store import Store


def test_after_run_returns_while_the_rows_are_locked(
    postgres_url: str, receiver: Receiver
) -> None:
    store = Store(postgres_url)
    store.migrate()
    cfg = alerts_config({
        "delivery": FAST_DELIVERY,
        "sinks": {"hook": {"kind": "webhook", "url": receiver.url}},
        "rules": {"RecallLow": {"probe": "docs-recall", "field": "recall_ratio",
                                "match": {"k": 10, "mode": "live"}, "condition": "< 0.8"}},
    })
    runtime = AlertsRuntime(cfg, store, AlertStats())
    evaluate = runtime.engine.evaluate
    evaluated_on: list[threading.Thread] = []
    finished = threading.Event()

    def observed_evaluate(*args: Any, **kwargs: Any) -> int:
        """The real evaluation; notes which thread runs it and when it is done."""
        evaluated_on.append(threading.current_thread())
        try:
            return evaluate(*args, **kwargs)
        finally:
            finished.set()

    try:
        evaluate("docs-recall", recall_run(0.9, T0))  # the state row exists
        runtime.engine.evaluate = observed_evaluate  # type: ignore[method-assign]
        with psycopg.connect(postgres_url.replace("postgresql+psycopg://", "postgresql://")) as other:
            other.execute("SELECT * FROM alert_states FOR UPDATE")  # a replica mid-evaluation
            # The hook is called on the probe's thread. Had it evaluated there, it would
            # wait for this lock, which is held until the block ends: the join would time out.
            probe = threading.Thread(target=runtime.after_run, name="probe-run", args=(
                "docs-recall", recall_run(0.5, T0 + minutes(1)), 2))
            probe.start()
            probe.join(timeout=60)
            assert not probe.is_alive(), "after_run waited for the locked alert rows"
            # Meanwhile the evaluation runs on the evaluator's thread and waits for the lock.
            wait_for_a_lock_wait(other)
            assert not finished.is_set() and receiver.requests == []
            assert [t.name.startswith("ragmon-alert-eval") for t in evaluated_on] == [True]
            assert evaluated_on[0] is not probe
        (request,) = receiver.wait_for(1)  # the lock is released: it evaluates and notifies
        assert request.json()["status"] == "firing"
        # the notification may go out (on a send thread) before evaluate returns
        assert finished.wait(10) and len(evaluated_on) == 1
    finally:
        runtime.close()
        store.close()


def wait_for_a_lock_wait(conn: psycopg.Connection[Any], timeout: float = 30.0) -> None:
    """Until some session waits for a lock held by ``conn``'s transaction."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()
        if row is not None and row[0] > 0:
            return
        time.sleep(0.02)
    raise AssertionError("the alert evaluation never waited for the locked rows")
