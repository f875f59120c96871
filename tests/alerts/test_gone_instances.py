"""Alerts of an instance that went away (a sidecar's pod replaced by a rollout) resolve, on
SQLite and a real PostgreSQL, with one "resolved" notice at a real webhook receiver.

Sidecars share one store, each under its own ``deployment.instance``; a replaced pod's name
never runs again. Whichever daemon evaluates the probe after the pod's newest run is older
than ``STALE_INTERVALS`` intervals resolves its firing alert, saying why.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from alert_support import FAST_DELIVERY, T0, Receiver, alerts_config, minutes, recall_run
from sqlalchemy import select

from ragmon.alerts.delivery import DeliveryWorker
from ragmon.alerts.engine import AlertEngine
from ragmon.alerts.tables import AlertNotification, AlertState
from ragmon.monitor.store import RunRecord, Store

LOW = {"probe": "docs-recall", "field": "recall_ratio", "match": {"k": 10, "mode": "live"},
       "condition": "< 0.5", "severity": "critical"}


@pytest.fixture
def pods(store_url: str, store: Store) -> Iterator[dict[str, Store]]:
    handles = {f"pod-{i}": Store(store_url, instance=f"pod-{i}") for i in range(2)}
    yield handles
    for handle in handles.values():
        handle.close()


def states(store: Store) -> dict[str, str]:
    with store.session() as s:
        return {r.instance: r.state for r in s.scalars(select(AlertState))}


def settle(store: Store, worker: DeliveryWorker) -> None:
    deadline = time.monotonic() + 10
    while True:
        worker.run_once()
        with store.session() as s:
            waiting = s.scalars(select(AlertNotification).where(
                AlertNotification.status.in_(("pending", "sending")))).all()
        if not waiting:
            return
        assert time.monotonic() < deadline, "delivery did not finish in time"
        time.sleep(0.02)


def test_a_gone_instance_resolves_once(pods: dict[str, Store], receiver: Receiver) -> None:
    cfg = alerts_config({"sinks": {"hook": {"kind": "webhook", "url": receiver.url}},
                         "rules": {"RecallLow": LOW}, "delivery": FAST_DELIVERY})
    eng = {pod: AlertEngine(cfg, s, intervals={"docs-recall": 60.0}) for pod, s in pods.items()}
    worker = DeliveryWorker(pods["pod-1"], cfg)

    def run(pod: str, record: RunRecord) -> None:
        eng[pod].evaluate(record.probe, record, pods[pod].record_run(record))

    run("pod-0", recall_run(0.25, T0))
    run("pod-1", recall_run(0.25, T0 + minutes(0.5)))
    settle(pods["pod-1"], worker)
    assert states(pods["pod-1"]) == {"pod-0": "firing", "pod-1": "firing"}
    # pod-0 is replaced; pod-1 keeps running. Within 3 intervals pod-0 still counts.
    run("pod-1", recall_run(0.25, T0 + minutes(2.5)))
    assert states(pods["pod-1"])["pod-0"] == "firing"
    run("pod-1", recall_run(0.25, T0 + minutes(3.5)))
    assert states(pods["pod-1"]) == {"pod-0": "resolved", "pod-1": "firing"}
    # another daemon evaluating later neither resolves it again nor notifies twice
    other = AlertEngine(cfg, pods["pod-1"], intervals={"docs-recall": 60.0})
    record = recall_run(0.25, T0 + minutes(4.5))
    other.evaluate(record.probe, record, pods["pod-1"].record_run(record))
    settle(pods["pod-1"], worker)
    bodies = [r.json() for r in receiver.ok_requests]
    events = sorted((b["alert"]["labels"]["ragmon_instance"], b["status"]) for b in bodies)
    assert events == [("pod-0", "firing"), ("pod-0", "resolved"), ("pod-1", "firing")]
    (resolved,) = [b for b in bodies if b["status"] == "resolved"]
    assert resolved["alert"]["annotations"]["resolved_reason"] == \
        "instance pod-0 stopped reporting (no run of docs-recall for 3 intervals)"
    assert resolved["alert"]["endsAt"] == "2026-03-02T09:03:30Z"


def test_an_instance_whose_runs_fail_still_reports(pods: dict[str, Store]) -> None:
    """A pod whose probe errors is there (its target is down): its alert stays."""
    cfg = alerts_config({"sinks": {"hook": {"kind": "webhook", "url": "http://127.0.0.1:9/"}},
                         "rules": {"RecallLow": LOW}})
    eng = {pod: AlertEngine(cfg, s, intervals={"docs-recall": 60.0}) for pod, s in pods.items()}
    records: list[tuple[str, Any]] = [("pod-0", recall_run(0.25, T0))]
    records += [("pod-0", recall_run(0, T0 + minutes(m), status="error")) for m in (1, 2, 3, 4)]
    records.append(("pod-1", recall_run(0.75, T0 + minutes(4.5))))
    for pod, record in records:
        eng[pod].evaluate(record.probe, record, pods[pod].record_run(record))
    assert states(pods["pod-1"]) == {"pod-0": "firing", "pod-1": "inactive"}
