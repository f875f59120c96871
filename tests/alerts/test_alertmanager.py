"""The Alertmanager sink against a real Alertmanager (Debian's prometheus-alertmanager, run on
127.0.0.1): the alert is read back through API v2, Alertmanager routes it to a real webhook
receiver, and the resolve ends it there too."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from alert_support import (
    FAST_DELIVERY,
    T0,
    Receiver,
    alerts_config,
    am_alerts,
    minutes,
    recall_run,
    wait_until,
)
from sqlalchemy import select

from ragmon.alerts.delivery import DeliveryWorker
from ragmon.alerts.engine import AlertEngine
from ragmon.alerts.tables import AlertNotification
from ragmon.monitor.store import Store


def test_alertmanager_receives_firing_and_resolve(
    tmp_path: Path, alertmanager: str, receiver: Receiver
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'ragmon.db'}")
    store.migrate()
    cfg = alerts_config({
        "external_url": "https://ragmon.example.org",
        "delivery": FAST_DELIVERY,
        "sinks": {"am": {"kind": "alertmanager", "url": alertmanager}},
        "rules": {"RagmonRecallLow": {
            "probe": "docs-recall", "field": "recall_ratio", "match": {"k": 10, "mode": "live"},
            "condition": "< 0.8", "severity": "critical", "labels": {"team": "search"},
            "summary": "recall@10 is {{ value }}", "runbook_url": "https://runbooks/recall"}},
    })
    engine, worker = AlertEngine(cfg, store), DeliveryWorker(store, cfg)

    def delivered() -> bool:
        worker.run_once()
        with store.session() as s:
            return all(st == "sent" for st in s.scalars(select(AlertNotification.status)))

    engine.evaluate("docs-recall", recall_run(0.5, T0))
    wait_until(delivered)
    (alert,) = wait_until(lambda: am_alerts(alertmanager))
    labels = {"alertname": "RagmonRecallLow", "probe": "docs-recall", "severity": "critical",
              "target": "docs", "k": "10", "mode": "live", "team": "search"}
    assert alert["labels"] == labels
    assert alert["annotations"] == {
        "summary": "recall@10 is 0.5",
        "description": 'RagmonRecallLow is firing for probe docs-recall on target "docs": '
                       'recall_ratio{k=10,mode=live} is 0.5.',
        "runbook_url": "https://runbooks/recall",
        "value": "0.5",
    }
    assert alert["startsAt"].startswith("2026-03-02T09:00:00")
    assert alert["generatorURL"] == "https://ragmon.example.org/alerts?rule=RagmonRecallLow"
    assert alert["status"]["state"] == "active"
    forwarded = wait_until(lambda: [r.json() for r in receiver.ok_requests])
    assert forwarded[0]["status"] == "firing"
    assert forwarded[0]["alerts"][0]["labels"] == labels

    engine.evaluate("docs-recall", recall_run(0.9, T0 + minutes(5)))
    wait_until(delivered)
    wait_until(lambda: not am_alerts(alertmanager))  # ended: no longer active
    resolved = wait_until(lambda: [r.json() for r in receiver.ok_requests
                                   if r.json()["status"] == "resolved"])
    (ended,) = resolved[0]["alerts"]
    assert ended["labels"] == labels
    assert ended["endsAt"].startswith("2026-03-02T09:05:00")
    store.close()


def test_cli_test_alert_ends_by_itself(
    tmp_path: Path, alertmanager: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from ragmon.monitor.app import main

    path = tmp_path / "ragmon.yaml"
    path.write_text(json.dumps({"alerts": {"sinks": {"am": {"kind": "alertmanager",
                                                            "url": alertmanager}}}}))
    assert main(["alerts", "test", "am", "-c", str(path)]) == 0
    (alert,) = wait_until(lambda: am_alerts(alertmanager))
    assert alert["labels"] == {"alertname": "RagmonTestNotification", "severity": "info",
                               "probe": "ragmon-test"}
    starts = datetime.fromisoformat(alert["startsAt"].replace("Z", "+00:00"))
    ends = datetime.fromisoformat(alert["endsAt"].replace("Z", "+00:00"))
    assert 299 <= (ends - starts).total_seconds() <= 301
    assert main(["alerts", "test", "am", "--resolve", "-c", str(path)]) == 0
    wait_until(lambda: not am_alerts(alertmanager))
