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
from ragmon.alerts.metrics import AlertCollector, AlertStats, alert_metrics_collector
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
        self.collector: AlertCollector | None = None

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

    def reload(self, daemon: Daemon) -> None:
        """A reloaded config: its rules, sinks and delivery settings from now on (an
        evaluation or a send in flight finishes with the old ones); the alert state and the
        outbox are in the store and stay."""
        config = alerts_section(daemon.config)
        assert daemon.store is not None and daemon.scheduler is not None
        stats = self.engine.stats
        old = self.worker
        self.worker = DeliveryWorker(daemon.store, config, stats)
        self.engine = AlertEngine(config, daemon.store, stats, on_enqueue=self.worker.deliver_due,
                                  intervals=_intervals(daemon))
        old.close(wait=False)
        _warn_unknown_probes(daemon, config)
        hooks = daemon.context.after_run
        if self.after_run in hooks:
            hooks.remove(self.after_run)
        active = config.enabled and bool(config.rules or config.sinks)
        if active and config.rules:
            hooks.append(self.after_run)
        if self.collector is not None:
            self.collector.sinks = list(config.sinks) if active else []
            self.collector.rules = {n: r.severity for n, r in config.rules.items()} \
                if active else {}
        daemon.context.http_routes["/alerts"] = status_app(daemon.config, daemon.store)
        for job in ("alerts:delivery", "alerts:retention"):
            if daemon.scheduler.get_job(job) is not None:
                daemon.scheduler.remove_job(job)
        if active:
            _schedule_jobs(daemon, self, config)


def install(daemon: Daemon) -> AlertsRuntime | None:
    """Plug alerting into a starting daemon: the after-run hook, the metrics, the delivery job.

    A daemon extension (listed by the composition root), called once the store, context,
    runner, scheduler (not started) and registry exist. With ``alerts.enabled: false``, or
    neither rules nor sinks, nothing is added.
    """
    config = alerts_section(daemon.config)
    if not config.enabled or not (config.rules or config.sinks):
        return None
    _warn_unknown_probes(daemon, config)
    # An extension is installed once the daemon has opened its store and built its scheduler.
    assert daemon.store is not None and daemon.scheduler is not None
    stats = AlertStats()
    runtime = AlertsRuntime(config, daemon.store, stats, _intervals(daemon))
    if config.rules:
        daemon.context.after_run.append(runtime.after_run)
    runtime.collector = alert_metrics_collector(daemon.store, stats, config)
    daemon.registry.register(runtime.collector)
    daemon.context.http_routes["/alerts"] = status_app(daemon.config, daemon.store)
    _schedule_jobs(daemon, runtime, config)
    return runtime


def _intervals(daemon: Daemon) -> dict[str, float]:
    return {name: cfg.interval for name, cfg in daemon.config.probes.items()}


def _warn_unknown_probes(daemon: Daemon, config: AlertsConfig) -> None:
    for name, rule in config.rules.items():
        if rule.probe not in daemon.config.probes:
            log.warning("alert rule %r watches probe %r, which is not configured; it will "
                        "never fire", name, rule.probe)


def _schedule_jobs(daemon: Daemon, runtime: AlertsRuntime, config: AlertsConfig) -> None:
    """The delivery and outbox retention jobs, when sinks are configured."""
    assert daemon.scheduler is not None
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
