"""The daemon-side wiring: the after-run hook hands evaluation to its own thread, so a probe
never waits on alerting, even when another replica holds the alert rows locked."""

from __future__ import annotations

import time

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
    try:
        runtime.engine.evaluate("docs-recall", recall_run(0.9, T0))  # the state row exists
        with psycopg.connect(postgres_url.replace("postgresql+psycopg://", "postgresql://")) as other:
            other.execute("SELECT * FROM alert_states FOR UPDATE")  # a replica mid-evaluation
            started = time.monotonic()
            runtime.after_run("docs-recall", recall_run(0.5, T0 + minutes(1)), 2)
            assert time.monotonic() - started < 0.2
            time.sleep(0.5)
            assert receiver.requests == []  # the evaluation waits for the lock, not the probe
        (request,) = receiver.wait_for(1)
        assert request.json()["status"] == "firing"
    finally:
        runtime.close()
        store.close()
