"""Notifications say why: what real receivers got from ragmon's own rules with their default
templates. A webhook receiver and a real Alertmanager (forwarding to a second receiver) hear
a probe that failed because its FAISS index file is gone, and a recall run whose verdict
blames the index, with its reasons and regressed queries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from alert_support import (
    FAST_DELIVERY,
    T0,
    Receiver,
    alerts_config,
    am_alerts,
    running_alertmanager,
    start_receiver,
    stop_receiver,
    wait_until,
)
from prometheus_client import CollectorRegistry

from ragmon.alerts.delivery import DeliveryWorker
from ragmon.alerts.engine import AlertEngine
from ragmon.monitor.app import load_config
from ragmon.monitor.daemon import Daemon
from ragmon.monitor.store import RunRecord, Store

EXTERNAL = "https://ragmon.example.org"


@pytest.fixture
def am_receiver() -> Iterator[Receiver]:
    """The receiver Alertmanager forwards to (apart from the webhook sink's)."""
    r = start_receiver()
    yield r
    stop_receiver(r)


@pytest.fixture
def am(tmp_path: Path, am_receiver: Receiver) -> Iterator[str]:
    with running_alertmanager(tmp_path, am_receiver) as url:
        yield url


def forwarded(receiver: Receiver) -> list[dict[str, Any]]:
    """The alerts Alertmanager forwarded, as its webhook sends them."""
    return [a for r in receiver.ok_requests for a in r.json()["alerts"]]


def test_a_failed_probe_notifies_its_error(tmp_path: Path, receiver: Receiver, am: str,
                                           am_receiver: Receiver) -> None:
    (tmp_path / "golden.jsonl").write_text(
        '{"id": "q1", "query": "how do I parse a date", "relevant": ["doc-1"]}\n')
    (tmp_path / "ragmon.yaml").write_text(yaml.safe_dump({
        "store": {"url": f"sqlite:///{tmp_path / 'ragmon.db'}"},
        "server": {"listen": "127.0.0.1:0"},
        "embedders": {"minilm": {"kind": "sentence-transformers"}},
        "targets": {"docs": {"kind": "faiss", "path": "gone.faiss", "embedder": "minilm"}},
        "golden_sets": {"questions": {"path": "golden.jsonl"}},
        "probes": {"docs-recall": {"kind": "recall", "target": "docs",
                                   "golden_set": "questions", "every": "1h"}},
        "alerts": {
            "external_url": EXTERNAL, "delivery": FAST_DELIVERY,
            "sinks": {"hook": {"kind": "webhook", "url": receiver.url},
                      "am": {"kind": "alertmanager", "url": am}},
            "rules": {"DocsRecallFailing": {"probe": "docs-recall", "field": "status",
                                            "condition": "!= ok"}},
        },
    }))
    daemon = Daemon(load_config(tmp_path / "ragmon.yaml", environ={}), CollectorRegistry())
    daemon.start()
    try:
        assert daemon.runner is not None
        failed, run_id = daemon.runner.run("docs-recall")
        assert failed.status == "failed" and "does not exist" in (failed.error or "")
        error = failed.error
        assert error is not None
        [hook] = receiver.wait_for(1, timeout=30)
        body = hook.json()
        assert body["alert"]["value"] == "failed"
        assert body["run"] == {"id": run_id, "status": "failed", "error": error}
        annotations = body["alert"]["annotations"]
        assert annotations["summary"] == f"DocsRecallFailing: probe docs-recall failed: {error}"
        assert error in annotations["description"]
        link = f"{EXTERNAL}/alerts?rule=DocsRecallFailing"
        assert link in annotations["description"]

        (alert,) = wait_until(lambda: am_alerts(am))
        assert alert["annotations"]["summary"] == annotations["summary"]
        assert alert["annotations"]["description"] == annotations["description"]
        assert alert["annotations"]["error"] == error
        assert alert["annotations"]["value"] == "failed"
        assert alert["generatorURL"] == link
        (sent,) = wait_until(lambda: forwarded(am_receiver))
        assert sent["annotations"]["error"] == error
    finally:
        daemon.shutdown()


LONG = ("which standard library module should I use to read and write compressed tar "
        "archives, including the ones compressed with gzip, bzip2 or lzma, and how do I "
        "list the members of such an archive without extracting it to the disk " * 3)


def blamed_run(run_id: int) -> RunRecord:
    """A recall run blaming the index, with its details as the recall probe stores them."""
    regressed = [{"query_id": f"q{i}", "query": LONG if i == 0 else f"question {i}",
                  "recall_before": 1.0, "recall_after": 0.25 * (i % 3),
                  "ranks_before": {"d1": 1}, "ranks_after": {}} for i in range(8)]
    return RunRecord(
        probe="docs-recall", kind="recall", target="docs", started_at=T0, finished_at=T0,
        status="ok", error=None,
        details={"verdict": "index", "verdict_k": 10,
                 "reasons": ["live recall@10 fell 0.31 while exact recall held",
                             "index fidelity@10 fell from 0.98 to 0.41",
                             "the index configuration changed: nprobe 32 -> 1",
                             "a fourth reason that is not shown"],
                 "regressed": regressed},
        values=[("recall_ratio", {"k": 10, "mode": "live"}, 0.4375)],
    )


def test_a_verdict_notification_carries_reasons_and_regressed_queries(
    tmp_path: Path, receiver: Receiver, am: str, am_receiver: Receiver
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'ragmon.db'}")
    store.migrate()
    cfg = alerts_config({
        "external_url": EXTERNAL, "delivery": FAST_DELIVERY,
        "sinks": {"hook": {"kind": "webhook", "url": receiver.url},
                  "am": {"kind": "alertmanager", "url": am}},
        "rules": {"DocsIndexBlamed": {"probe": "docs-recall", "verdict": ["index"]},
                  "DocsRecallLow": {"probe": "docs-recall", "field": "recall_ratio",
                                    "match": {"k": 10, "mode": "live"},
                                    "condition": "< 0.5"}},
    })
    engine, worker = AlertEngine(cfg, store), DeliveryWorker(store, cfg)
    engine.evaluate("docs-recall", blamed_run(7), 7)
    worker.run_once()
    hooks = {r.json()["alert"]["name"]: r.json() for r in receiver.wait_for(2)}

    verdict = hooks["DocsIndexBlamed"]["alert"]
    assert verdict["value"] == "index"
    assert verdict["annotations"]["summary"] == (
        "DocsIndexBlamed: probe docs-recall verdict index (recall@10)")
    text = verdict["annotations"]["description"]
    for reason in blamed_run(7).details["reasons"][:3]:
        assert f"- {reason}" in text
    assert "a fourth reason" not in text
    # The top 5 regressed queries, each with its text cut to 120 characters.
    assert [line for line in text.splitlines() if line.startswith("- q")] == [
        f'- q0 "{LONG[:119].rstrip()}…": recall@10 1 -> 0',
        '- q1 "question 1": recall@10 1 -> 0.25', '- q2 "question 2": recall@10 1 -> 0.5',
        '- q3 "question 3": recall@10 1 -> 0', '- q4 "question 4": recall@10 1 -> 0.25']
    assert "(3 more)" in text
    assert f"Run 7: {EXTERNAL}/alerts?rule=DocsIndexBlamed" in text

    low = hooks["DocsRecallLow"]["alert"]
    assert low["value"] == 0.4375
    assert low["annotations"]["summary"] == (
        "DocsRecallLow: probe docs-recall recall_ratio{k=10,mode=live} is 0.4375 "
        "(verdict index)")
    assert "- index fidelity@10 fell from 0.98 to 0.41" in low["annotations"]["description"]

    alerts = {a["labels"]["alertname"]: a for a in wait_until(
        lambda: len(am_alerts(am)) == 2 and am_alerts(am))}
    am_verdict = alerts["DocsIndexBlamed"]["annotations"]
    assert am_verdict["description"] == text
    assert am_verdict["verdict"] == "index" and am_verdict["value"] == "index"
    assert am_verdict["reasons"].splitlines() == blamed_run(7).details["reasons"][:3]
    assert am_verdict["regressed_queries"].splitlines()[0] == \
        f'q0 "{LONG[:119].rstrip()}…": recall@10 1 -> 0'
    assert "error" not in am_verdict
    assert alerts["DocsRecallLow"]["annotations"]["value"] == "0.4375"
    got = {a["labels"]["alertname"]: a for a in wait_until(
        lambda: len(forwarded(am_receiver)) >= 2 and forwarded(am_receiver))}
    assert got["DocsIndexBlamed"]["annotations"]["reasons"] == am_verdict["reasons"]
    assert json.dumps(got["DocsIndexBlamed"]).count(LONG[:119]) >= 1
    store.close()
