"""End to end in a real daemon: a recall regression makes exactly one firing notification and
one resolved notification when it heals; /metrics shows the alert; the CLI lists and tests."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from alert_support import Receiver, probe_sections

from ragmon.alerts.runtime import AlertsRuntime
from ragmon.monitor.app import main, validate_raw
from ragmon.monitor.daemon import Daemon
from ragmon.monitor.probe import Deadline, Probe, ProbeResult


class ScriptedRecallProbe(Probe):
    """A stand-in for the recall probe kind, whose own tests cover how it measures: it returns
    the next recall value of a script, with values and details shaped like the real probe's."""

    kind = "recall"

    def __init__(self, name: str, context: Any, script: list[float]):
        super().__init__(name, SimpleNamespace(timeout=10.0, target="docs"), context)
        self.script = list(script)

    def run(self, deadline: Deadline) -> ProbeResult:
        recall = self.script.pop(0)
        result = ProbeResult(target="docs")
        result.add("recall_ratio", recall, k=10, mode="live")
        result.add("recall_ratio", 0.9375, k=10, mode="exact")
        if recall < 0.8:
            result.details = {
                "verdict": "index",
                "regressed": [
                    {"query_id": "reset-password", "recall_before": 1.0, "recall_after": 0.0},
                    {"query_id": "refund-policy", "recall_before": 1.0, "recall_after": 0.5},
                ],
            }
        else:
            result.details = {"verdict": "healthy", "regressed": []}
        return result


def config_dict(tmp_path: Path, receiver: Receiver) -> dict[str, Any]:
    return {
        **probe_sections(tmp_path),
        "store": {"url": f"sqlite:///{tmp_path / 'ragmon.db'}"},
        "server": {"listen": "127.0.0.1:0"},
        "alerts": {
            "external_url": "http://ragmon.test",
            "delivery": {"poll": "100ms", "backoff": "50ms", "timeout": "2s"},
            "sinks": {"hook": {"kind": "webhook", "url": f"{receiver.url}/ragmon",
                               "hmac_secret": {"env": "RAGMON_TEST_HMAC"}}},
            "rules": {"RagmonDocsRecallLow": {
                "probe": "docs-recall", "field": "recall_ratio",
                "match": {"k": 10, "mode": "live"}, "condition": "< 0.8",
                "severity": "critical",
                "summary": "docs recall@10 fell to {{ value }} ({{ details.verdict }})",
                "description": "regressed: {% for q in details.regressed %}{{ q.query_id }}; "
                               "{% endfor %}",
            }},
        },
    }


def wait_for(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)
    return result


@pytest.fixture(autouse=True)
def hmac_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGMON_TEST_HMAC", "hmac-secret-e2e")


def test_recall_regression_fires_once_and_resolves_once(
    tmp_path: Path, receiver: Receiver
) -> None:
    config = validate_raw(config_dict(tmp_path, receiver), "ragmon.yaml", tmp_path)
    daemon = Daemon(config)
    daemon.start()
    for job in daemon.scheduler.get_jobs():  # the script, not the schedule, drives the runs
        if job.id.startswith("probe:"):
            job.pause()
    try:
        probe = ScriptedRecallProbe("docs-recall", daemon.context, [0.9, 0.5, 0.5, 0.5, 0.9, 0.9])
        daemon.runner.probes["docs-recall"] = probe
        for _ in range(4):
            daemon.runner.run("docs-recall")
        wait_for(lambda: receiver.ok_requests)
        metrics = urllib.request.urlopen(
            f"http://127.0.0.1:{daemon.http.port}/metrics", timeout=5).read().decode()
        assert ('ragmon_alerts_firing{rule="RagmonDocsRecallLow",severity="critical"} 1.0'
                in metrics)
        generator = receiver.ok_requests[0].json()["alert"]["generatorURL"]
        assert generator == "http://ragmon.test/alerts?rule=RagmonDocsRecallLow"
        local = generator.replace("http://ragmon.test", f"http://127.0.0.1:{daemon.http.port}")
        status = json.load(urllib.request.urlopen(local, timeout=5))
        (alert,) = status["alerts"]
        assert (alert["rule"], alert["state"], alert["value"]) == (
            "RagmonDocsRecallLow", "firing", 0.5)
        for _ in range(2):
            daemon.runner.run("docs-recall")
        wait_for(lambda: len(receiver.ok_requests) >= 2)
        time.sleep(0.5)  # a duplicate would arrive within a few polls
        bodies = [r.json() for r in receiver.ok_requests]
        assert [b["status"] for b in bodies] == ["firing", "resolved"]
        assert bodies[0]["alert"]["annotations"] == {
            "summary": "docs recall@10 fell to 0.5 (index)",
            "description": "regressed: reset-password; refund-policy; ",
        }
        assert bodies[0]["run"]["id"] == 2  # the first bad run fired (for: 0s)
    finally:
        for installed in daemon.installed:
            installed.close()
        daemon.shutdown()


def write_config(tmp_path: Path, receiver: Receiver) -> Path:
    path = tmp_path / "ragmon.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path, receiver)))
    return path


def test_cli_list_shows_state_and_queue(
    tmp_path: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, receiver)
    assert main(["migrate", "-c", str(path)]) == 0
    capsys.readouterr()
    assert main(["alerts", "list", "-c", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["RULE", "STATE", "SINCE", "LAST", "NOTIFIED", "VALUE", "LABELS"]
    assert out[1].split() == ["RagmonDocsRecallLow", "inactive", "-", "-", "-",
                              "probe=docs-recall,severity=critical"]
    assert out[4].split() == ["hook", "webhook", "0", "0", "0", "0", "-"]

    config = validate_raw(config_dict(tmp_path, receiver), "ragmon.yaml", tmp_path)
    from alert_support import T0, recall_run

    from ragmon.alerts.engine import AlertEngine
    from ragmon.monitor.store import Store

    store = Store(config.store.url.get_secret_value())
    AlertEngine(config.alerts, store).evaluate("docs-recall", recall_run(0.5, T0))
    store.close()
    assert main(["alerts", "list", "-c", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    (alert,) = data["alerts"]
    assert (alert["rule"], alert["state"], alert["since"], alert["value"]) == (
        "RagmonDocsRecallLow", "firing", "2026-03-02T09:00:00Z", 0.5)
    assert alert["labels"] == {"k": "10", "mode": "live", "probe": "docs-recall",
                               "severity": "critical", "target": "docs"}
    assert data["sinks"] == [{"sink": "hook", "kind": "webhook", "pending": 1, "sending": 0,
                              "sent": 0, "failed": 0, "last_error": None}]


def test_cli_test_sends_through_the_sink(
    tmp_path: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, receiver)
    assert main(["alerts", "test", "hook", "--resolve", "-c", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "sent a firing test notification through sink 'hook' (webhook)",
        "sent a resolved test notification through sink 'hook' (webhook)",
    ]
    bodies = [r.json() for r in receiver.ok_requests]
    assert [(b["alert"]["name"], b["status"]) for b in bodies] == [
        ("RagmonTestNotification", "firing"), ("RagmonTestNotification", "resolved")]
    assert all("x-ragmon-signature" in r.headers for r in receiver.ok_requests)


def test_cli_test_errors(tmp_path: Path, receiver: Receiver,
                         capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, receiver)
    assert main(["alerts", "test", "pager", "-c", str(path)]) == 1
    assert capsys.readouterr().err == (
        "ragmon: error: no sink named 'pager'; valid sinks: hook\n")
    receiver.fail_next = 1
    assert main(["alerts", "test", "hook", "-c", str(path)]) == 1
    host = receiver.url.removeprefix("http://")
    assert capsys.readouterr().err == (
        f"ragmon: error: sink 'hook' (webhook): {host} answered HTTP 500\n")


@pytest.mark.parametrize("alerts", [{"enabled": False}, {"sinks": {}, "rules": {}}])
def test_alerts_off_or_empty_installs_nothing(
    tmp_path: Path, receiver: Receiver, alerts: dict[str, Any]
) -> None:
    raw = config_dict(tmp_path, receiver)
    raw["alerts"].update(alerts)
    daemon = Daemon(validate_raw(raw, "ragmon.yaml", tmp_path))
    daemon.start()
    try:
        assert not any(isinstance(i, AlertsRuntime) for i in daemon.installed)
        assert not any(getattr(h, "__module__", "").startswith("ragmon.alerts")
                       for h in daemon.context.after_run)
        assert daemon.scheduler.get_job("alerts:delivery") is None
    finally:
        daemon.shutdown()
