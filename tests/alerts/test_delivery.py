"""Delivery through real HTTP receivers on 127.0.0.1: the webhook body and its HMAC signature,
the Slack shape, retries with backoff while a receiver fails, a receiver that is down or
slow, giving up, metrics, and secrets kept out of logs, rows, errors and metrics."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import subprocess
import time
from typing import Any

import pytest
from alert_support import (
    FAST_DELIVERY,
    T0,
    Receiver,
    alerts_config,
    minutes,
    recall_run,
    start_receiver,
    stop_receiver,
)
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import select

from ragmon.alerts.delivery import DeliveryWorker
from ragmon.alerts.engine import AlertEngine
from ragmon.alerts.metrics import AlertStats, alert_metrics_collector
from ragmon.alerts.tables import AlertNotification, AlertState
from ragmon.monitor.store import Store

from ..conftest import promtool_path

PROMTOOL = promtool_path()
HMAC_SECRET = "hmac-key-5f0d3a"
TOKEN = "tok-9c1e77"
RULES = {"RecallLow": {
    "probe": "docs-recall", "field": "recall_ratio", "match": {"k": 10, "mode": "live"},
    "condition": "< 0.8", "severity": "critical",
    "summary": "recall@10 of {{ probe }} is {{ value }}",
    "description": "verdict: {{ details.verdict }}",
}}


def setup(
    store: Store, sinks: dict[str, Any], **delivery: Any
) -> tuple[AlertEngine, DeliveryWorker]:
    cfg = alerts_config({"sinks": sinks, "rules": RULES,
                         "delivery": {**FAST_DELIVERY, **delivery}})
    stats = AlertStats()
    return AlertEngine(cfg, store, stats), DeliveryWorker(store, cfg, stats)


def drain(worker: DeliveryWorker, until: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "delivery did not finish in time"
        worker.run_once()
        time.sleep(0.02)


def rows(store: Store) -> list[AlertNotification]:
    with store.session() as s:
        return list(s.scalars(select(AlertNotification).order_by(AlertNotification.id)))


def all_sent(store: Store) -> bool:
    return all(r.status in ("sent", "failed") for r in rows(store))


def test_webhook_body_and_hmac_signature_with_retries(store: Store, receiver: Receiver) -> None:
    engine, worker = setup(store, {"hook": {
        "kind": "webhook", "url": f"{receiver.url}/ragmon", "hmac_secret": HMAC_SECRET,
        "headers": {"X-Api-Key": TOKEN}}})
    receiver.fail_next = 2  # the first two attempts get HTTP 500
    engine.evaluate("docs-recall", recall_run(0.5, T0, details={"verdict": "index"}),
                    run_id=7)
    drain(worker, lambda: all_sent(store))
    assert [r.headers["x-test-answer"] for r in receiver.requests] == ["500", "500", "200"]
    (row,) = rows(store)
    assert (row.status, row.attempts) == ("sent", 3)
    assert row.last_error == f"sink 'hook' (webhook): {receiver.url[7:]} answered HTTP 500"

    request = receiver.ok_requests[0]
    assert request.path == "/ragmon"
    assert request.headers["x-api-key"] == TOKEN
    timestamp = request.headers["x-ragmon-timestamp"]
    expected = hmac.new(HMAC_SECRET.encode(), f"{timestamp}.".encode() + request.body,
                        hashlib.sha256).hexdigest()
    assert request.headers["x-ragmon-signature"] == f"sha256={expected}"
    body = request.json()
    assert body == {
        "version": "1", "receiver": "hook", "status": "firing",
        "alert": {
            "name": "RecallLow", "fingerprint": body["alert"]["fingerprint"],
            "status": "firing", "severity": "critical",
            "labels": {"alertname": "RecallLow", "probe": "docs-recall", "severity": "critical",
                       "target": "docs", "k": "10", "mode": "live"},
            "annotations": {"summary": "recall@10 of docs-recall is 0.5",
                            "description": "verdict: index"},
            "startsAt": "2026-03-02T09:00:00Z", "endsAt": None, "generatorURL": "",
            "value": 0.5,
        },
        "run": {"id": 7, "status": "ok", "error": None},
        "details": {"verdict": "index"},
    }
    assert worker.stats.notifications[("hook", "failed")] == 2
    assert worker.stats.notifications[("hook", "sent")] == 1


def test_resolve_is_delivered_after_firing(store: Store, receiver: Receiver) -> None:
    engine, worker = setup(store, {"hook": {"kind": "webhook", "url": receiver.url}})
    engine.evaluate("docs-recall", recall_run(0.5, T0))
    drain(worker, lambda: all_sent(store))
    engine.evaluate("docs-recall", recall_run(0.9, T0 + minutes(5)))
    drain(worker, lambda: all_sent(store))
    bodies = [r.json() for r in receiver.ok_requests]
    assert [b["status"] for b in bodies] == ["firing", "resolved"]
    assert bodies[1]["alert"]["endsAt"] == "2026-03-02T09:05:00Z"
    assert bodies[0]["alert"]["fingerprint"] == bodies[1]["alert"]["fingerprint"]


def test_slack_message(store: Store, receiver: Receiver) -> None:
    engine, worker = setup(store, {"chat": {
        "kind": "slack", "url": f"{receiver.url}/services/T000/B000/{TOKEN}",
        "channel": "#rag-alerts"}})
    engine.evaluate("docs-recall", recall_run(0.5, T0, details={"verdict": "index"}))
    drain(worker, lambda: all_sent(store))
    body = receiver.ok_requests[0].json()
    head = "[FIRING] RecallLow: recall@10 of docs-recall is 0.5"
    assert body["text"] == head and body["channel"] == "#rag-alerts"
    (attachment,) = body["attachments"]
    assert attachment["color"] == "#d63232" and attachment["text"] == "verdict: index"
    assert {"title": "value", "value": "0.5", "short": True} in attachment["fields"]
    assert {"title": "probe", "value": "docs-recall", "short": True} in attachment["fields"]


def test_down_and_slow_receivers_are_retried_while_others_deliver(
    store: Store, receiver: Receiver
) -> None:
    slow_receiver = start_receiver()
    slow_receiver.delay = 1.5
    try:
        engine, worker = setup(store, {
            "good": {"kind": "webhook", "url": receiver.url},
            "down": {"kind": "webhook", "url": "http://127.0.0.1:9/hook"},
            "slow": {"kind": "webhook", "url": slow_receiver.url, "timeout": "300ms"},
        }, max_attempts=2)
        engine.evaluate("docs-recall", recall_run(0.5, T0))
        drain(worker, lambda: all_sent(store))
        by_sink = {r.sink: r for r in rows(store)}
        assert by_sink["good"].status == "sent" and len(receiver.ok_requests) == 1
        assert by_sink["down"].status == "failed" and by_sink["down"].attempts == 2
        assert by_sink["down"].last_error == (
            "sink 'down' (webhook): cannot reach 127.0.0.1:9: Connection refused")
        assert by_sink["slow"].status == "failed"
        assert by_sink["slow"].last_error.endswith("timed out")
        assert worker.stats.notifications[("down", "failed")] == 1
        assert worker.stats.notifications[("down", "dropped")] == 1
    finally:
        stop_receiver(slow_receiver)


def test_metrics_pass_promtool(store: Store, receiver: Receiver) -> None:
    engine, worker = setup(store, {"hook": {"kind": "webhook", "url": receiver.url}})
    receiver.fail_next = 1
    engine.evaluate("docs-recall", recall_run(0.5, T0))
    drain(worker, lambda: all_sent(store))
    registry = CollectorRegistry()
    registry.register(alert_metrics_collector(store, worker.stats, worker.config))
    value = registry.get_sample_value
    assert value("ragmon_alerts_firing", {"rule": "RecallLow", "severity": "critical"}) == 1
    assert value("ragmon_notifications_total", {"sink": "hook", "outcome": "sent"}) == 1
    assert value("ragmon_notification_failures_total", {"sink": "hook"}) == 1
    assert value("ragmon_notifications_queued", {"sink": "hook"}) == 0
    text = generate_latest(registry)
    out = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_secrets_stay_out_of_logs_rows_errors_and_metrics(
    store: Store, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    secret_url = f"{receiver.url}/hooks/{TOKEN}"
    engine, worker = setup(store, {
        "hook": {"kind": "webhook", "url": secret_url, "hmac_secret": HMAC_SECRET,
                 "headers": {"X-Token": TOKEN}},
        "down": {"kind": "slack", "url": f"http://127.0.0.1:9/services/{TOKEN}"},
        "basic": {"kind": "webhook", "url": f"http://ragmon:{TOKEN}@127.0.0.1:9/x"},
    }, max_attempts=2)
    receiver.fail_next = 1
    caplog.set_level(logging.DEBUG)
    engine.evaluate("docs-recall", recall_run(0.5, T0))
    drain(worker, lambda: all_sent(store))
    registry = CollectorRegistry()
    registry.register(alert_metrics_collector(store, worker.stats, worker.config))
    with store.session() as s:
        stored = repr([r.__dict__ for r in s.scalars(select(AlertNotification))])
        stored += repr([r.__dict__ for r in s.scalars(select(AlertState))])
    everything = caplog.text + stored + generate_latest(registry).decode()
    assert "answered HTTP 500" in everything and "Connection refused" in everything
    for secret in (TOKEN, HMAC_SECRET):
        assert secret not in everything


def test_basic_auth_from_the_url(store: Store, receiver: Receiver) -> None:
    host = receiver.url.removeprefix("http://")
    engine, worker = setup(store, {"hook": {"kind": "webhook",
                                            "url": f"http://ragmon:{TOKEN}@{host}/in"}})
    engine.evaluate("docs-recall", recall_run(0.5, T0))
    drain(worker, lambda: all_sent(store))
    request = receiver.ok_requests[0]
    assert request.path == "/in"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(
        f"ragmon:{TOKEN}".encode()).decode()


def test_retention_keeps_what_is_still_to_be_sent(store: Store, receiver: Receiver) -> None:
    engine, worker = setup(store, {"hook": {"kind": "webhook", "url": receiver.url},
                                   "down": {"kind": "webhook", "url": "http://127.0.0.1:9/"}},
                           backoff="1h")
    engine.evaluate("docs-recall", recall_run(0.5, T0))  # T0 is months before now
    worker.run_once()
    assert {r.sink: r.status for r in rows(store)} == {"hook": "sent", "down": "pending"}
    assert worker.prune(retention_seconds=86400) == 1
    assert [r.sink for r in rows(store)] == ["down"]


def test_a_sent_notification_recorded_late_is_not_sent_again(
    postgres_url: str, receiver: Receiver
) -> None:
    """The store is blocked while the receiver accepts (another client holds the outbox
    locked past the store's statement timeout): recording "sent" fails at first, and must
    still land before the claim's lease ends, or the replica that takes the row over when
    the lease ends sends the same notification again."""
    import threading

    import psycopg
    from sqlalchemy.engine import make_url

    plain = make_url(postgres_url).set(drivername="postgresql")
    locker = psycopg.connect(plain.render_as_string(hide_password=False))
    store, other = Store(postgres_url, statement_timeout=1.0), Store(postgres_url)
    store.migrate()
    lease = 4.0

    def lock_the_outbox() -> None:
        receiver.on_request = None
        locker.execute("LOCK TABLE alert_notifications IN ACCESS EXCLUSIVE MODE")
        threading.Timer(2.0, locker.commit).start()

    try:
        sink = {"hook": {"kind": "webhook", "url": receiver.url}}
        engine, worker = setup(store, sink, lease=f"{lease:g}s", timeout="1s")
        engine.evaluate("docs-recall", recall_run(0.5, T0))
        receiver.on_request = lock_the_outbox
        assert worker.run_once() == 1
        receiver.wait_for(1)
        time.sleep(lease + 0.5)  # the first claim's lease has ended
        _, later = setup(other, sink, lease=f"{lease:g}s", timeout="1s")
        later.run_once()
        assert [(r.status, r.attempts) for r in rows(other)] == [("sent", 1)]
    finally:
        locker.close()
        store.close()
        other.close()
    assert len(receiver.ok_requests) == 1
    assert worker.stats.notifications[("hook", "sent")] == 1
