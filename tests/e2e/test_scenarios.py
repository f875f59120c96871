"""End to end on the demo's deployment: `ragmon run` as a subprocess, /metrics scraped over
HTTP and checked by promtool, each kind of rot injected into the running deployment with its
verdict, its attribution, exactly one notification at a real webhook receiver and at a real
SMTP mailbox, and a resolved one after the revert; the report; no alert without a change;
SIGTERM during a probe; a restart that neither re-notifies nor loses history.

The tests share one running deployment and run in file order; each leaves it healthy.
"""

from __future__ import annotations

import math
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from ragmon.monitor.demo import rot
from ragmon.monitor.http import free_port, http_get
from ragmon.monitor.store import Store
from tests.alerts.alert_support import Receiver, start_receiver, stop_receiver
from tests.report.delivery_support import Mailbox, smtp_server

from .daemon_support import (
    GOLDEN_QUESTIONS,
    RAGMON,
    Daemon,
    Traffic,
    e2e_config,
    last_id,
    mails,
    newest_runs,
    notifications,
    wait_until,
)

RULES = ("EmbeddingPipelineChanged", "IndexDegraded", "ContentRot", "QueryTopicsMoved")


@dataclass
class Deployment:
    data: Path
    config: Path
    store: Store
    daemon: Daemon
    receiver: Receiver
    mailbox: Mailbox
    traffic: Traffic

    def verdict_run(self, verdict: str, after: int, timeout: float = 120) -> Any:
        """The first docs-recall run after run ``after`` with this verdict."""
        def found() -> Any:
            return next((r for r in reversed(newest_runs(self.store, "docs-recall", after))
                         if r.details.get("verdict") == verdict), None)
        return wait_until(found, timeout, f"no docs-recall run with verdict {verdict}",
                          self.daemon)

    def runs_after(self, probe: str, after: int, n: int, timeout: float = 120) -> list[Any]:
        return wait_until(lambda: len(newest_runs(self.store, probe, after)) >= n
                          and newest_runs(self.store, probe, after), timeout,
                          f"{n} runs of {probe} did not happen", self.daemon)

    def notified(self, rule: str, statuses: list[str], timeout: float = 30,
                 start: int = 0) -> None:
        """Exactly these notifications about ``rule`` arrived at both sinks (after the
        first ``start`` of each)."""
        wait_until(lambda: notifications(self.receiver, rule)[start:] == statuses
                   and len(mails(self.mailbox, rule)[start:]) == len(statuses), timeout,
                   f"{rule}: webhook {notifications(self.receiver, rule)}, mail "
                   f"{mails(self.mailbox, rule)}; expected {statuses} after {start}",
                   self.daemon)

    def all_notifications(self) -> int:
        return len(self.receiver.ok_requests) + len(self.mailbox.messages)


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    # Not under pytest's basetemp: a concurrent pytest run prunes old basetemps, which would
    # delete the folder of a deployment still running.
    data = Path(tempfile.mkdtemp(prefix="ragmon-e2e-"))
    receiver = start_receiver()
    with smtp_server(None) as (smtp_port, mailbox):
        port = free_port()
        config = e2e_config(data, port, receiver.url, smtp_port)
        traffic = Traffic(data)
        traffic.start()
        daemon = Daemon(config, port)
        daemon.start()
        store = Store(f"sqlite:///{data / 'ragmon.db'}")
        try:
            d = Deployment(data, config, store, daemon, receiver, mailbox, traffic)
            # Baselines: the first healthy recall run, the canary's reference, a full
            # reference pool of query traffic.
            d.verdict_run("healthy", 0, timeout=120)
            wait_until(lambda: any(r.details.get("verdict") == "compared"
                                   and "pool_filling" not in r.details
                                   for r in d.store.runs(probe="query-drift", limit=3)),
                       120, "the query reference pool did not fill", daemon)
            yield d
        finally:
            if daemon.proc is not None:
                daemon.stop()
            traffic.stop()
            store.close()
            stop_receiver(receiver)
            shutil.rmtree(data, ignore_errors=True)


def test_metrics_carry_every_series_and_pass_promtool(deployment: Deployment,
                                                      promtool: str) -> None:
    status, body = http_get(deployment.daemon.base + "/metrics")
    assert status == 200
    for series in (
        'ragmon_probe_success{kind="canary",probe="canary",target=""} 1.0',
        'ragmon_probe_success{kind="recall",probe="docs-recall",target="stdlib-docs"} 1.0',
        'ragmon_probe_success{kind="drift",probe="query-drift",target="stdlib-docs"} 1.0',
        'ragmon_recall_verdict{kind="recall",probe="docs-recall",target="stdlib-docs",'
        'verdict="healthy"} 1.0',
        'ragmon_canary_changed{embedder="minilm",kind="canary",probe="canary",target=""} 0.0',
    ):
        assert series in body
    for name in ("ragmon_recall_ratio{k=\"10\"", "ragmon_index_fidelity_ratio{k=\"10\"",
                 "ragmon_canary_cosine_min{", "ragmon_drift_alarm{", "ragmon_coverage_gap_ratio{",
                 "ragmon_probe_last_success_timestamp_seconds{"):
        assert name in body, name
    for rule in RULES:
        assert f'ragmon_alerts_firing{{rule="{rule}"' in body
    check = subprocess.run([promtool, "check", "metrics"], input=body, text=True,
                           capture_output=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


def test_index_degradation_is_blamed_on_the_index_and_notified_once(
        deployment: Deployment) -> None:
    d = deployment
    before = last_id(d.store, "docs-recall")
    rot.weak_index(d.data)
    run = d.verdict_run("index", before)
    assert any("ANN-vs-exact recall fell" in r for r in run.details["reasons"])
    d.notified("IndexDegraded", ["firing"])
    d.runs_after("docs-recall", run.id, 2)  # still degraded: no second notification
    d.notified("IndexDegraded", ["firing"])
    rot.restore(d.data)
    d.verdict_run("healthy", run.id)
    d.notified("IndexDegraded", ["firing", "resolved"])


def test_content_rot_names_the_documents(deployment: Deployment, minilm: Any) -> None:
    d = deployment
    before = last_id(d.store, "docs-recall")
    changed = rot.content_rot(d.data, minilm.encode)
    run = d.verdict_run("content", before)
    reasons = " ".join(run.details["reasons"])
    assert "golden documents are missing from the index" in reasons
    named = [doc for doc in changed["deleted"] if doc in reasons]
    assert named, reasons
    d.notified("ContentRot", ["firing"])
    rot.restore(d.data)
    d.verdict_run("healthy", run.id)
    d.notified("ContentRot", ["firing", "resolved"])


def _edit_embedder(config: Path, **changes: Any) -> None:
    raw = yaml.safe_load(config.read_text())
    raw["embedders"]["minilm"] = {k: v for k, v in {**raw["embedders"]["minilm"],
                                                    **changes}.items() if v is not None}
    tmp = config.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(raw, sort_keys=False))
    tmp.replace(config)


def test_pipeline_change_is_blamed_on_the_embedding(deployment: Deployment) -> None:
    d = deployment
    before = last_id(d.store, "docs-recall")
    canary_before = last_id(d.store, "canary")
    _edit_embedder(d.config, max_seq_length=rot.TRUNCATION)  # the daemon reloads its config
    try:
        run = d.verdict_run("embedding", before)
        assert any("query embedding pipeline changed" in r or "canary" in r
                   for r in run.details["reasons"])

        def changed_canary() -> Any:  # the canary runs on its own schedule, maybe later
            return next((r for r in newest_runs(d.store, "canary", canary_before)
                         if any(v.name == "canary_changed" and v.value == 1.0
                                for v in d.store.run_values(r.id))), None)

        canary = wait_until(changed_canary, 60, "no canary run saw the change", d.daemon)
        assert canary.status == "ok"
        d.notified("EmbeddingPipelineChanged", ["firing"])
    finally:  # later scenarios need the pipeline back, whatever failed here
        _edit_embedder(d.config, max_seq_length=None)
    d.verdict_run("healthy", run.id)
    d.notified("EmbeddingPipelineChanged", ["firing", "resolved"])


def test_topic_shift_raises_the_drift_alarm_with_a_coverage_gap(deployment: Deployment) -> None:
    d = deployment
    before = last_id(d.store, "query-drift")
    d.traffic.shift = True
    try:
        run = wait_until(lambda: next((r for r in newest_runs(d.store, "query-drift", before)
                                       if r.details.get("alarm")), None), 90,
                         "no drift alarm", d.daemon)
        methods = run.details["methods"]
        assert methods["clusters"]["details"]["grew"], methods["clusters"]
        assert methods["coverage"]["statistic"] > 0.3
        d.notified("QueryTopicsMoved", ["firing"])
    finally:
        d.traffic.shift = False
    wait_until(lambda: not d.store.runs(probe="query-drift", limit=1)[0].details.get("alarm"),
               90, "the drift alarm did not clear", d.daemon)
    d.notified("QueryTopicsMoved", ["firing", "resolved"])


def test_the_report_contains_the_incidents(deployment: Deployment) -> None:
    out = deployment.data / "report.html"
    since = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    proc = subprocess.run([*RAGMON, "report", "-c", str(deployment.config), "--since", since,
                           "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    for rule in ("IndexDegraded", "ContentRot", "EmbeddingPipelineChanged"):
        assert rule in html, rule


def test_no_change_repeated_fires_nothing(deployment: Deployment) -> None:
    d = deployment
    sent = d.all_notifications()
    before = {p: last_id(d.store, p) for p in ("docs-recall", "query-drift", "canary")}
    recall = d.runs_after("docs-recall", before["docs-recall"], 5, timeout=90)
    drift = d.runs_after("query-drift", before["query-drift"], 5, timeout=90)
    time.sleep(1.0)  # deliveries of the last evaluations
    assert {r.details.get("verdict") for r in recall} == {"healthy"}
    assert not any(r.details.get("alarm") for r in drift)
    assert d.all_notifications() == sent


def _next_run_midpoint(store: Store, probe: str, every: float) -> float:
    """Seconds from now to the middle of the probe's next scheduled run."""
    last = store.runs(probe=probe, limit=1)[0]
    took = (last.finished_at - last.started_at).total_seconds()
    start = last.started_at.replace(tzinfo=UTC) + timedelta(
        seconds=every * max(1, math.ceil(took / every + 1e-9)))
    return max(0.0, (start - datetime.now(UTC)).total_seconds() + took / 2)


def test_restart_keeps_a_firing_alert_quiet_and_the_history(deployment: Deployment) -> None:
    d = deployment
    before = last_id(d.store, "docs-recall")
    start = len(notifications(d.receiver, "IndexDegraded"))
    rot.weak_index(d.data)
    try:
        run = d.verdict_run("index", before)
        d.notified("IndexDegraded", ["firing"], start=start)
        history = len(d.store.runs(probe="docs-recall", limit=10_000))
        assert d.daemon.stop() == 0
        d.daemon.start()
        d.runs_after("docs-recall", run.id, 2, timeout=300)
        assert len(d.store.runs(probe="docs-recall", limit=10_000)) >= history + 2
        status, body = http_get(d.daemon.base + "/metrics")
        assert 'ragmon_alerts_firing{rule="IndexDegraded",severity="warning"} 1.0' in body
        time.sleep(1.0)
        d.notified("IndexDegraded", ["firing"], start=start)
    finally:
        rot.restore(d.data)
    d.notified("IndexDegraded", ["firing", "resolved"], timeout=120, start=start)


def test_sigterm_during_a_probe_stores_no_partial_run(deployment: Deployment) -> None:
    d = deployment
    time.sleep(_next_run_midpoint(d.store, "docs-recall", 2.0))
    assert d.daemon.proc is not None
    d.daemon.proc.send_signal(signal.SIGTERM)
    assert d.daemon.proc.wait(60) == 0
    d.daemon.proc = None
    with d.store.session() as s:
        from sqlalchemy import func, select

        from ragmon.monitor.store.models import ProbeRun, QueryResult

        rows = dict(s.execute(select(QueryResult.run_id, func.count()).group_by(
            QueryResult.run_id)).all())
        runs = s.scalars(select(ProbeRun).where(ProbeRun.probe == "docs-recall")).all()
    for r in runs:
        assert r.finished_at is not None and r.status in ("ok", "failed", "timeout")
        if r.status == "ok":
            assert rows.get(r.id) == GOLDEN_QUESTIONS, (r.id, rows.get(r.id))
