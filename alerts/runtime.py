"""Alerting inside a running daemon: the after-run hook, the delivery and retention jobs,
the metrics collector and the ``/alerts`` page (``install`` wires them in)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.triggers.interval import IntervalTrigger

from ragmon.alerts.config import AlertsConfig, alerts_section
from ragmon.alerts.delivery import DeliveryWorker
from ragmon.alerts.engine import AlertEngine
from ragmon.alerts.metrics import AlertStats, alert_metrics_collector
from ragmon.alerts.status import status_app
from ragmon.monitor.store import RunRecord, Store

if TYPE_CHECKING:
    from ragmon.monitor.daemon import Daemon

log = logging.getLogger("ragmon.alerts")


class AlertsRuntime:
    """What ``install`` adds to a daemon: the engine, the delivery worker, the evaluator."""

    def __init__(self, config: AlertsConfig, store: Store, stats: AlertStats,
                 intervals: Mapping[str, float] | None = None):
        self.worker = DeliveryWorker(store, config, stats)
        self.engine = AlertEngine(config, store, stats, on_enqueue=self.worker.deliver_due,
                                  intervals=intervals)
        # One thread evaluates, in run order, so a probe's thread never waits on alerting.
        self._evaluator = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ragmon-alert-eval")

    def after_run(self, probe: str, record: RunRecord, run_id: int | None) -> None:
        """The after-run hook: queue the evaluation and return at once."""
        self._evaluator.submit(self._evaluate, probe, record, run_id)

    def _evaluate(self, probe: str, record: RunRecord, run_id: int | None) -> None:
        try:
            self.engine.evaluate(probe, record, run_id)
        except Exception:  # noqa: BLE001 - alerting must never take the daemon down
            self.engine.stats.evaluation_failed()
            log.exception("alert evaluation after run %s of %r failed", run_id, probe)

    def close(self, wait: bool = True) -> None:
        self._evaluator.shutdown(wait=wait, cancel_futures=not wait)
        self.worker.close(wait=wait)


def install(daemon: Daemon) -> AlertsRuntime | None:
    """Plug alerting into a starting daemon: the after-run hook, the metrics, the delivery job.

    A daemon extension (listed by the composition root), called once the store, context,
    runner, scheduler (not started) and registry exist. With ``alerts.enabled: false``, or
    neither rules nor sinks, nothing is added.
    """
    config = alerts_section(daemon.config)
    if not config.enabled or not (config.rules or config.sinks):
        return None
    for name, rule in config.rules.items():
        if rule.probe not in daemon.config.probes:
            log.warning("alert rule %r watches probe %r, which is not configured; it will "
                        "never fire", name, rule.probe)
    # An extension is installed once the daemon has opened its store and built its scheduler.
    assert daemon.store is not None and daemon.scheduler is not None
    stats = AlertStats()
    intervals = {name: cfg.interval for name, cfg in daemon.config.probes.items()}
    runtime = AlertsRuntime(config, daemon.store, stats, intervals)
    if config.rules:
        daemon.context.after_run.append(runtime.after_run)
    daemon.registry.register(alert_metrics_collector(daemon.store, stats, config))
    daemon.context.http_routes["/alerts"] = status_app(daemon.config, daemon.store)
    if config.sinks:
        daemon.scheduler.add_job(
            runtime.worker.deliver_due, IntervalTrigger(seconds=config.delivery.poll),
            id="alerts:delivery", name="alert delivery", replace_existing=True,
            misfire_grace_time=max(1, int(config.delivery.poll * 10)),
        )
        # With the store's retention schedule: at start too, so a daemon restarted more
        # often than the interval still cleans the outbox.
        store = daemon.config.store
        first: dict[str, Any] = {"next_run_time": datetime.now(UTC) + timedelta(seconds=5)} \
            if store.retention_at_start else {}
        daemon.scheduler.add_job(
            runtime.worker.prune, IntervalTrigger(seconds=store.retention_interval),
            args=[store.retention], id="alerts:retention",
            name="alert outbox retention", replace_existing=True, **first,
        )
    return runtime
