"""The state machine inactive -> pending -> firing -> resolved, stored in SQL, on SQLite and on
a real PostgreSQL: transitions, k-of-n, repeats, restarts, and what each rule kind reads."""

from __future__ import annotations

from typing import Any

from alert_support import T0, alerts_config, minutes, recall_run
from sqlalchemy import select, update

from ragmon.alerts.engine import AlertEngine
from ragmon.alerts.tables import AlertNotification, AlertState
from ragmon.monitor.store import Store

HOOK = {"hook": {"kind": "webhook", "url": "http://127.0.0.1:9/hook"}}


def engine(store: Store, rules: dict[str, Any], **extra: Any) -> AlertEngine:
    return AlertEngine(alerts_config({"sinks": HOOK, "rules": rules, **extra}), store)


def states(store: Store) -> dict[str, str]:
    with store.session() as s:
        return {
            ",".join(f"{k}={v}" for k, v in sorted(row.labels.items()) if k in ("k", "mode"))
            or row.rule: row.state
            for row in s.scalars(select(AlertState))
        }


def outbox(store: Store) -> list[tuple[str, str, str]]:
    with store.session() as s:
        rows = s.scalars(select(AlertNotification).order_by(AlertNotification.id)).all()
        return [(r.rule, r.event, r.payload["status"]) for r in rows]


def mark_sent(store: Store) -> None:
    """What the delivery worker does once a receiver accepted the notifications."""
    with store.session() as s:
        s.execute(update(AlertNotification).where(AlertNotification.status == "pending")
                  .values(status="sent"))


RECALL_RULE = {
    "probe": "docs-recall", "field": "recall_ratio", "match": {"k": 10, "mode": "live"},
    "condition": "< 0.8", "for": "10m", "severity": "critical",
}


def test_pending_firing_resolved_with_for(store: Store) -> None:
    e = engine(store, {"RecallLow": RECALL_RULE})
    assert e.evaluate("docs-recall", recall_run(0.9, T0)) == 0
    assert states(store) == {"k=10,mode=live": "inactive"}
    assert e.evaluate("docs-recall", recall_run(0.5, T0 + minutes(5))) == 0
    assert states(store) == {"k=10,mode=live": "pending"}
    assert e.evaluate("docs-recall", recall_run(0.5, T0 + minutes(10))) == 0  # 5m < for
    assert e.evaluate("docs-recall", recall_run(0.5, T0 + minutes(15))) == 1
    assert states(store) == {"k=10,mode=live": "firing"}
    assert e.evaluate("docs-recall", recall_run(0.5, T0 + minutes(20))) == 0  # no re-notify
    mark_sent(store)
    assert e.evaluate("docs-recall", recall_run(0.9, T0 + minutes(25))) == 1
    assert states(store) == {"k=10,mode=live": "resolved"}
    assert outbox(store) == [("RecallLow", "firing", "firing"),
                             ("RecallLow", "resolved", "resolved")]


def test_pending_that_clears_is_never_told(store: Store) -> None:
    e = engine(store, {"RecallLow": RECALL_RULE})
    e.evaluate("docs-recall", recall_run(0.5, T0))
    e.evaluate("docs-recall", recall_run(0.9, T0 + minutes(5)))
    assert states(store) == {"k=10,mode=live": "inactive"}
    assert outbox(store) == []


def test_restart_neither_renotifies_nor_forgets(store_url: str) -> None:
    first = Store(store_url)
    first.migrate()
    rule = {"RecallLow": {**RECALL_RULE, "for": "0s"}}
    assert engine(first, rule).evaluate("docs-recall", recall_run(0.5, T0)) == 1
    mark_sent(first)
    first.close()
    second = Store(store_url)  # a restarted daemon: new process, same database
    e = engine(second, rule)
    assert states(second) == {"k=10,mode=live": "firing"}
    assert e.evaluate("docs-recall", recall_run(0.5, T0 + minutes(5))) == 0
    assert e.evaluate("docs-recall", recall_run(0.9, T0 + minutes(10))) == 1
    assert outbox(second) == [("RecallLow", "firing", "firing"),
                              ("RecallLow", "resolved", "resolved")]
    second.close()


def test_k_of_n_runs(store: Store) -> None:
    rule = {**RECALL_RULE, "for_runs": {"k": 2, "n": 3}}
    del rule["for"]
    e = engine(store, {"RecallLow": rule})
    e.evaluate("docs-recall", recall_run(0.5, T0))
    assert states(store) == {"k=10,mode=live": "pending"}
    e.evaluate("docs-recall", recall_run(0.9, T0 + minutes(1)))
    assert states(store) == {"k=10,mode=live": "pending"}  # 1 of the last 2 runs
    assert e.evaluate("docs-recall", recall_run(0.5, T0 + minutes(2))) == 1  # 2 of 3
    assert states(store) == {"k=10,mode=live": "firing"}
    mark_sent(store)
    assert e.evaluate("docs-recall", recall_run(0.9, T0 + minutes(3))) == 1
    assert states(store) == {"k=10,mode=live": "resolved"}  # 1 of the last 3


def test_repeat_interval_for_still_firing(store: Store) -> None:
    e = engine(store, {"RecallLow": {**RECALL_RULE, "for": "0s", "repeat_interval": "1h"}})
    assert e.evaluate("docs-recall", recall_run(0.5, T0)) == 1
    assert e.evaluate("docs-recall", recall_run(0.5, T0 + minutes(59))) == 0
    assert e.evaluate("docs-recall", recall_run(0.5, T0 + minutes(61))) == 1
    assert e.evaluate("docs-recall", recall_run(0.5, T0 + minutes(62))) == 0
    assert [event for _, event, _ in outbox(store)] == ["firing", "firing"]


def test_one_instance_per_series_and_match(store: Store) -> None:
    rule = {**RECALL_RULE, "for": "0s", "match": {"mode": "live"}}
    e = engine(store, {"RecallLow": rule})
    assert e.evaluate("docs-recall", recall_run(0.5, T0)) == 2  # k=5 and k=10, live only
    assert states(store) == {"k=10,mode=live": "firing", "k=5,mode=live": "firing"}


def test_failed_run_neither_fires_nor_resolves(store: Store) -> None:
    e = engine(store, {"RecallLow": {**RECALL_RULE, "for": "0s"}})
    e.evaluate("docs-recall", recall_run(0.5, T0))
    e.evaluate("docs-recall", recall_run(0.0, T0 + minutes(1), status="failed"))
    assert states(store) == {"k=10,mode=live": "firing"}


def test_late_older_run_is_ignored(store: Store) -> None:
    e = engine(store, {"RecallLow": {**RECALL_RULE, "for": "0s"}})
    e.evaluate("docs-recall", recall_run(0.5, T0 + minutes(10)))
    assert e.evaluate("docs-recall", recall_run(0.9, T0)) == 0
    assert states(store) == {"k=10,mode=live": "firing"}


def test_status_verdict_and_details_rules(store: Store) -> None:
    e = engine(store, {
        "ProbeFailing": {"probe": "docs-recall", "field": "status", "condition": "!= ok"},
        "IndexBlamed": {"probe": "docs-recall", "verdict": ["index"]},
        "ManyRegressed": {"probe": "docs-recall", "field": "details.regressed_count",
                          "condition": ">= 3"},
    })
    run = recall_run(0.5, T0, details={"verdict": "index", "regressed_count": 4})
    assert e.evaluate("docs-recall", run) == 2
    assert e.evaluate("docs-recall", recall_run(0.0, T0 + minutes(1), status="failed")) == 1
    assert states(store) == {"ProbeFailing": "firing", "IndexBlamed": "firing",
                             "ManyRegressed": "firing"}
    assert e.evaluate("other-probe", recall_run(0.5, T0 + minutes(2), probe="other-probe")) == 0


def test_templates_see_the_runs_details(store: Store) -> None:
    summary = ("recall@{{ labels.k }} of {{ probe }} is {{ '%.2f' | format(value) }}; "
               "verdict {{ details.verdict }}")
    description = ("{% for q in details.regressed[:2] %}{{ q.query_id }} ({{ q.recall_before }}"
                   " -> {{ q.recall_after }}); {% endfor %}"
                   "evidence: {{ details.evidence.exact_recall }}")
    e = engine(store, {"RecallLow": {**RECALL_RULE, "for": "0s", "summary": summary,
                                     "description": description}},
               external_url="https://ragmon.example.org/")
    details = {"verdict": "index", "evidence": {"exact_recall": 0.9375},
               "regressed": [
                   {"query_id": "reset-password", "recall_before": 1.0, "recall_after": 0.0},
                   {"query_id": "refund-policy", "recall_before": 1.0, "recall_after": 0.5},
                   {"query_id": "third", "recall_before": 1.0, "recall_after": 0.0}]}
    e.evaluate("docs-recall", recall_run(0.5, T0, details=details), run_id=42)
    with store.session() as s:
        payload = s.scalars(select(AlertNotification.payload)).one()
    assert payload["annotations"] == {
        "summary": "recall@10 of docs-recall is 0.50; verdict index",
        "description": "reset-password (1.0 -> 0.0); refund-policy (1.0 -> 0.5); "
                       "evidence: 0.9375",
    }
    assert payload["labels"] == {"alertname": "RecallLow", "probe": "docs-recall",
                                 "severity": "critical", "target": "docs", "k": "10",
                                 "mode": "live"}
    assert payload["run_id"] == 42 and payload["value"] == 0.5
    assert payload["starts_at"] == "2026-03-02T09:00:00Z"
    assert payload["generator_url"] == "https://ragmon.example.org/alerts?rule=RecallLow"


def test_resolve_replaces_an_undelivered_firing(store: Store) -> None:
    """A receiver that never got the firing notice is not told that it resolved."""
    e = engine(store, {"RecallLow": {**RECALL_RULE, "for": "0s"}})
    e.evaluate("docs-recall", recall_run(0.5, T0))
    assert e.evaluate("docs-recall", recall_run(0.9, T0 + minutes(1))) == 0
    with store.session() as s:
        assert s.scalars(select(AlertNotification.status)).all() == ["superseded"]


def test_store_down_is_counted_not_raised() -> None:
    down = Store("postgresql://ragmon:pw@127.0.0.1:1/ragmon")
    e = engine(down, {"RecallLow": RECALL_RULE,
                      "Failing": {"probe": "docs-recall", "field": "status", "condition": "!= ok"}})
    assert e.evaluate("docs-recall", recall_run(0.5, T0)) == 0
    assert e.stats.evaluation_failures == 2
    down.close()


def test_sink_without_send_resolved_gets_no_resolve(store: Store) -> None:
    cfg = alerts_config({
        "sinks": {"hook": HOOK["hook"],
                  "mail": {"kind": "email", "host": "smtp", "from": "a@example.org",
                           "to": ["b@example.org"], "send_resolved": False}},
        "rules": {"RecallLow": {**RECALL_RULE, "for": "0s"}},
    })
    e = AlertEngine(cfg, store)
    assert e.evaluate("docs-recall", recall_run(0.5, T0)) == 2
    mark_sent(store)
    assert e.evaluate("docs-recall", recall_run(0.9, T0 + minutes(1))) == 1
    with store.session() as s:
        assert sorted(s.execute(select(AlertNotification.sink, AlertNotification.event))) == [
            ("hook", "firing"), ("hook", "resolved"), ("mail", "firing")]


def test_metrics_survive_a_store_that_is_down() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from ragmon.alerts.metrics import alert_metrics_collector

    down = Store("postgresql://ragmon:pw@127.0.0.1:1/ragmon")
    registry = CollectorRegistry()
    registry.register(alert_metrics_collector(down, None, alerts_config({"sinks": HOOK})))
    text = generate_latest(registry).decode()
    assert 'ragmon_notifications_total{outcome="sent",sink="hook"} 0.0' in text
    assert "ragmon_alerts_firing" not in text
    down.close()
