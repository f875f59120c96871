"""The Alertmanager sink against a real Alertmanager (Debian's prometheus-alertmanager, run on
127.0.0.1): the alert is read back through API v2, Alertmanager routes it to a real webhook
receiver, and the resolve ends it there too."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from alert_support import FAST_DELIVERY, T0, Receiver, alerts_config, minutes, recall_run
from sqlalchemy import select

from ragmon.alerts.delivery import DeliveryWorker
from ragmon.alerts.engine import AlertEngine
from ragmon.alerts.tables import AlertNotification
from ragmon.monitor.http import free_port
from ragmon.monitor.store import Store

BINARY = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"


@pytest.fixture
def alertmanager(tmp_path: Path, receiver: Receiver) -> Iterator[str]:
    """A real Alertmanager on loopback that forwards every alert to ``receiver``."""
    config = tmp_path / "alertmanager.yml"
    config.write_text(json.dumps({
        "route": {"receiver": "test", "group_by": ["alertname"], "group_wait": "0s",
                  "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "test", "webhook_configs": [
            {"url": f"{receiver.url}/am", "send_resolved": True}]}],
    }))
    port = free_port()
    proc = subprocess.Popen(
        [BINARY, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
         "--cluster.listen-address=", f"--storage.path={tmp_path / 'data'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"alertmanager did not start: {proc.stderr.read().decode()[-2000:]}"  # type: ignore[union-attr]
                    ) from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.communicate(timeout=10)  # waits and closes the stderr pipe


def am_alerts(url: str, **filters: str) -> list[dict[str, Any]]:
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    with urllib.request.urlopen(f"{url}/api/v2/alerts?{query}", timeout=5) as response:
        return list(json.load(response))


def wait_until(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


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
        "description": "RagmonRecallLow is firing for probe docs-recall.",
        "runbook_url": "https://runbooks/recall",
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
