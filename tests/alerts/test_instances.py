"""Alert state per instance, and rules across instances, on SQLite and a real PostgreSQL.

Sidecars share one store, each under its own ``deployment.instance`` (a ``Store`` handle per
instance here, as each sidecar process has one). A per-instance rule keeps one state per
instance, labelled ``ragmon_instance``; a ``group_instances`` rule is one state across
instances, firing once with the count of instances that match.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from alert_support import T0, alerts_config, minutes, recall_run
from prometheus_client import CollectorRegistry
from sqlalchemy import select, update

from ragmon.alerts.engine import AlertEngine
from ragmon.alerts.grouped import GROUP
from ragmon.alerts.metrics import AlertStats, alert_metrics_collector
from ragmon.alerts.tables import AlertNotification, AlertState
from ragmon.monitor.store import RunRecord, Store

HOOK = {"hook": {"kind": "webhook", "url": "http://127.0.0.1:9/hook"}}
LOW = {"probe": "docs-recall", "field": "recall_ratio", "match": {"k": 10, "mode": "live"},
       "condition": "< 0.5", "severity": "critical"}


@pytest.fixture
def pods(store_url: str, store: Store) -> Iterator[dict[str, Store]]:
    """Store handles of four sidecars on the (migrated) store."""
    handles = {f"pod-{i}": Store(store_url, instance=f"pod-{i}") for i in range(4)}
    yield handles
    for handle in handles.values():
        handle.close()


def run(store: Store, engine: AlertEngine, record: RunRecord) -> None:
    """What a sidecar's runner and alert hook do with one run."""
    engine.evaluate(record.probe, record, store.record_run(record))


def engines(pods: dict[str, Store], rules: dict[str, Any]) -> dict[str, AlertEngine]:
    config = alerts_config({"sinks": HOOK, "rules": rules})
    return {pod: AlertEngine(config, s, intervals={"docs-recall": 60.0})
            for pod, s in pods.items()}


def rows(store: Store) -> list[AlertState]:
    with store.session() as s:
        return list(s.scalars(select(AlertState).order_by(AlertState.id)).all())


def outbox(store: Store) -> list[AlertNotification]:
    with store.session() as s:
        return list(s.scalars(select(AlertNotification).order_by(AlertNotification.id)).all())


def test_each_instance_keeps_its_own_alert_state(pods: dict[str, Store]) -> None:
    """A healthy run of pod-1 does not resolve pod-0's alert (it did when one state row
    per rule was shared: the healthy run saw pod-0's series as gone)."""
    eng = engines(pods, {"RecallLow": LOW})
    run(pods["pod-0"], eng["pod-0"], recall_run(0.25, T0))
    run(pods["pod-1"], eng["pod-1"], recall_run(0.75, T0 + minutes(1)))
    run(pods["pod-0"], eng["pod-0"], recall_run(0.25, T0 + minutes(2)))
    states = {(r.instance, r.labels.get("ragmon_instance")): r.state for r in rows(pods["pod-0"])}
    assert states == {("pod-0", "pod-0"): "firing", ("pod-1", "pod-1"): "inactive"}
    (sent,) = outbox(pods["pod-0"])
    assert sent.event == "firing" and sent.payload["labels"]["ragmon_instance"] == "pod-0"


def test_a_standalone_daemon_keeps_its_labels(store: Store) -> None:
    """Instance "" (standalone replicas): no ragmon_instance label, as before sidecars."""
    eng = AlertEngine(alerts_config({"sinks": HOOK, "rules": {"RecallLow": LOW}}), store)
    run(store, eng, recall_run(0.25, T0))
    (row,) = rows(store)
    assert row.instance == "" and "ragmon_instance" not in row.labels and row.state == "firing"


def test_a_grouped_rule_fires_once_with_the_count(pods: dict[str, Store]) -> None:
    eng = engines(pods, {"RecallLowPods": {**LOW, "group_instances": True, "for": "30s"}})
    for i, pod in enumerate(pods):  # pod-0 and pod-1 below the floor
        run(pods[pod], eng[pod], recall_run(0.25 if i < 2 else 0.75, T0 + minutes(i / 10)))
    assert [r.state for r in rows(pods["pod-0"])] == ["pending"]
    run(pods["pod-0"], eng["pod-0"], recall_run(0.25, T0 + minutes(1)))
    (row,) = rows(pods["pod-0"])
    assert (row.instance, row.state) == (GROUP, "firing")
    assert row.details["value"] == 2.0
    assert row.details["instances"] == {"matched": ["pod-0", "pod-1"], "total": 4,
                                        "instances": ["pod-0", "pod-1", "pod-2", "pod-3"]}
    (sent,) = outbox(pods["pod-0"])  # five evaluations, one page
    assert sent.payload["annotations"]["summary"] == (
        "RecallLowPods: 2 of 4 instances of probe docs-recall match recall_ratio{k=10,mode=live}"
        " (pod-0, pod-1)")
    assert sent.payload["annotations"]["description"] == (
        "RecallLowPods is firing for probe docs-recall on target \"docs\": 2 of 4 instances "
        "match recall_ratio{k=10,mode=live} (pod-0, pod-1).")
    assert "ragmon_instance" not in sent.payload["labels"]

    with pods["pod-0"].session() as s:  # delivered, as the delivery worker records it
        s.execute(update(AlertNotification).values(status="sent"))
    # Both recover: resolved once.
    for i, pod in enumerate(("pod-0", "pod-1")):
        run(pods[pod], eng[pod], recall_run(0.75, T0 + minutes(2 + i / 10)))
    assert [r.state for r in rows(pods["pod-0"])] == ["resolved"]
    assert [n.event for n in outbox(pods["pod-0"])] == ["firing", "resolved"]


def test_a_grouped_rule_waits_for_min_instances(pods: dict[str, Store]) -> None:
    eng = engines(pods, {"ManyLow": {**LOW, "group_instances": True, "min_instances": 3}})
    for i, pod in enumerate(pods):
        run(pods[pod], eng[pod], recall_run(0.25 if i < 2 else 0.75, T0 + minutes(i / 10)))
    assert [(r.state, r.details["value"]) for r in rows(pods["pod-0"])] == [("inactive", 2.0)]
    run(pods["pod-2"], eng["pod-2"], recall_run(0.25, T0 + minutes(1)))
    assert [(r.state, r.details["value"]) for r in rows(pods["pod-0"])] == [("firing", 3.0)]


def test_an_instance_gone_quiet_stops_counting(pods: dict[str, Store]) -> None:
    """pod-0's last run is older than 3 intervals (3 x 60 s): it no longer counts, as its
    series would have gone stale in Prometheus."""
    eng = engines(pods, {"RecallLowPods": {**LOW, "group_instances": True}})
    run(pods["pod-0"], eng["pod-0"], recall_run(0.25, T0))
    run(pods["pod-1"], eng["pod-1"], recall_run(0.75, T0 + minutes(4)))
    (row,) = rows(pods["pod-0"])
    assert row.details["instances"]["instances"] == ["pod-1"]
    assert row.state == "resolved"


def test_each_sidecar_counts_its_own_alerts(pods: dict[str, Store]) -> None:
    """``ragmon_alerts_firing`` of a sidecar: its own alerts and the ones across instances."""
    rules = {"RecallLow": LOW, "RecallLowPods": {**LOW, "group_instances": True}}
    eng = engines(pods, rules)
    run(pods["pod-0"], eng["pod-0"], recall_run(0.25, T0))
    config = alerts_config({"sinks": HOOK, "rules": rules})
    firing = {}
    for pod in ("pod-0", "pod-1"):
        registry = CollectorRegistry()
        registry.register(alert_metrics_collector(pods[pod], AlertStats(), config))
        firing[pod] = {rule: registry.get_sample_value(
            "ragmon_alerts_firing", {"rule": rule, "severity": "critical"}) for rule in rules}
    assert firing == {"pod-0": {"RecallLow": 1.0, "RecallLowPods": 1.0},
                      "pod-1": {"RecallLow": 0.0, "RecallLowPods": 1.0}}
