"""Alerting's own metrics, exported through one custom Collector.

``ragmon_alerts_firing{rule,severity}`` and ``ragmon_alerts_pending{rule,severity}`` and
``ragmon_notifications_queued{sink}`` come from the store (shared by replicas);
``ragmon_notifications_total{sink,outcome}``, ``ragmon_notification_failures_total{sink}``,
``ragmon_notification_lost_claims_total{sink}`` and ``ragmon_alert_evaluation_failures_total``
count what this process did.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from ragmon.alerts.grouped import GROUP

log = logging.getLogger("ragmon.alerts")

OUTCOMES = ("sent", "failed", "dropped")


class AlertStats:
    """Thread-safe counters of deliveries and evaluations in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.notifications: Counter[tuple[str, str]] = Counter()
        self.lost_claims: Counter[str] = Counter()
        self.evaluation_failures = 0

    def delivered(self, sink: str, outcome: str) -> None:
        with self._lock:
            self.notifications[(sink, outcome)] += 1

    def lost_claim(self, sink: str) -> None:
        """A send's result was not recorded: its claim on the row had ended."""
        with self._lock:
            self.lost_claims[sink] += 1

    def evaluation_failed(self) -> None:
        with self._lock:
            self.evaluation_failures += 1

    def failures(self, sink: str) -> int:
        with self._lock:
            return self.notifications[(sink, "failed")] + self.notifications[(sink, "dropped")]


class AlertCollector(Collector):
    def __init__(self, store: Any, stats: AlertStats | None = None,
                 sinks: Iterable[str] = (), rules: dict[str, str] | None = None):
        self.store = store
        self.stats = stats or AlertStats()
        self.sinks = list(sinks)
        self.rules = dict(rules or {})  # rule -> severity, so quiet rules export 0

    def describe(self) -> list[Any]:
        return []  # values come from the store; skip registry-time collection

    def collect(self) -> Iterator[Any]:
        yield from self._states()
        total = CounterMetricFamily(
            "ragmon_notifications", "Notification delivery attempts by outcome "
            "(sent; failed: will retry; dropped: gave up).", labels=["sink", "outcome"])
        failures = CounterMetricFamily(
            "ragmon_notification_failures", "Failed notification delivery attempts.",
            labels=["sink"])
        lost = CounterMetricFamily(
            "ragmon_notification_lost_claims", "Delivery results not recorded because the "
            "claim on the notification had ended (its current holder decides).",
            labels=["sink"])
        sinks = sorted(set(self.sinks) | {s for s, _ in self.stats.notifications}
                       | set(self.stats.lost_claims))
        for sink in sinks:
            for outcome in OUTCOMES:
                total.add_metric([sink, outcome], self.stats.notifications[(sink, outcome)])
            failures.add_metric([sink], self.stats.failures(sink))
            lost.add_metric([sink], self.stats.lost_claims[sink])
        yield total
        yield failures
        yield lost
        yield CounterMetricFamily(
            "ragmon_alert_evaluation_failures", "Alert rule evaluations that raised.",
            value=self.stats.evaluation_failures)

    def _states(self) -> Iterator[Any]:
        from ragmon.alerts.tables import AlertNotification, AlertState

        firing = GaugeMetricFamily("ragmon_alerts_firing", "Alert instances firing, per rule.",
                                   labels=["rule", "severity"])
        pending = GaugeMetricFamily("ragmon_alerts_pending", "Alert instances pending, per rule.",
                                    labels=["rule", "severity"])
        queued = GaugeMetricFamily("ragmon_notifications_queued",
                                   "Notifications waiting to be delivered.", labels=["sink"])
        counts: Counter[tuple[str, str, str]] = Counter()
        waiting: Counter[str] = Counter({s: 0 for s in self.sinks})
        try:
            with self.store.session() as s:
                for rule, labels, state in s.execute(
                    # This daemon's instance, and the rules kept across instances.
                    select(AlertState.rule, AlertState.labels, AlertState.state).where(
                        AlertState.instance.in_((self.store.instance, GROUP)))
                ):
                    counts[(rule, str((labels or {}).get("severity", "")), state)] += 1
                for sink, n in s.execute(
                    select(AlertNotification.sink, func.count())
                    .where(AlertNotification.status.in_(("pending", "sending")))
                    .group_by(AlertNotification.sink)
                ):
                    waiting[sink] = int(n)
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail on a store blip
            log.warning("alert metrics: cannot read the store: %s", exc)
            return
        keys = {(r, sev) for r, sev, _ in counts} | set(self.rules.items())
        for rule, severity in sorted(keys):
            firing.add_metric([rule, severity], counts[(rule, severity, "firing")])
            pending.add_metric([rule, severity], counts[(rule, severity, "pending")])
        for sink, n in sorted(waiting.items()):
            queued.add_metric([sink], n)
        yield firing
        yield pending
        yield queued


def alert_metrics_collector(store: Any, stats: AlertStats | None = None,
                            config: Any = None) -> AlertCollector:
    """The Collector to register beside the probe metrics."""
    sinks = list(config.sinks) if config is not None else []
    rules = {n: r.severity for n, r in config.rules.items()} if config is not None else {}
    return AlertCollector(store, stats, sinks, rules)
