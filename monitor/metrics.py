"""Prometheus exposition: one collector turns the newest stored run of every configured
probe into gauges; process-level counters live in the same (passed-in) registry.

Names follow the Prometheus conventions: ``ragmon_`` prefix, base units, ``_ratio`` in
0..1, ``_timestamp_seconds``. Labels come only from bounded config (probe, kind, target
and the value labels each probe kind declares in ``METRICS``), never from query text.

A scrape costs the same at any history size: the newest run and the newest successful run
of each configured probe are index lookups, and the store's rows per table and bytes
(``ragmon_store_rows``, ``ragmon_store_size_bytes``) are cached, measured again after each
retention pass or when older than ``SIZE_MAX_AGE``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ragmon.monitor import __version__
from ragmon.monitor.config import RootConfig
from ragmon.monitor.errors import StoreError
from ragmon.monitor.probe import MetricSpec
from ragmon.monitor.store import Store, parse_labels
from ragmon.monitor.store.models import ProbeRun, RunValue

log = logging.getLogger("ragmon.metrics")
BASE_LABELS = ["probe", "kind", "target"]
#: The label naming a sidecar's instance (``deployment.instance``): not ``instance``, which
#: Prometheus sets to the scrape target's address (the two would collide).
INSTANCE_LABEL = "ragmon_instance"


class StoreCollector(Collector):
    """Exports the latest stored results of the configured probes at each scrape.

    ``metric_specs`` are the values each probe kind exports (``{kind: {name: spec}}``);
    stored values a kind does not declare are not exported."""

    def __init__(self, store: Store, config: RootConfig,
                 metric_specs: Mapping[str, Mapping[str, MetricSpec]]):
        self.store = store
        self.config = config
        self.metric_specs = metric_specs
        # A sidecar's series carry its instance; standalone replicas (instance "") export
        # no such label, so their series and the rules on them stay as they were.
        self._instance = [store.instance] if store.instance else []
        self.base_labels = BASE_LABELS + [INSTANCE_LABEL] * bool(store.instance)

    def describe(self) -> list[Metric]:
        return []  # values depend on what is stored; skip registry-time collection

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("ragmon_store_up", "1 when the last read of the store worked.")
        try:
            latest = self.store.latest_runs(self.config.probes)
            last_ok = self.store.last_success(self.config.probes)
        except StoreError as exc:
            log.warning("metrics: cannot read the store: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from self._schedule_families()
        yield from self._run_families(latest, last_ok)
        yield from self._store_families()

    def _store_families(self) -> Iterator[Metric]:
        try:
            size = self.store.size()
        except StoreError as exc:
            log.warning("metrics: cannot measure the store's size: %s", exc)
            return
        rows = GaugeMetricFamily(
            "ragmon_store_rows", "Rows per table of the store (PostgreSQL: the planner's "
            "estimate), as last measured.", labels=["table"])
        for table, n in sorted(size.rows.items()):
            rows.add_metric([table], n)
        yield rows
        if size.bytes is not None:
            yield GaugeMetricFamily(
                "ragmon_store_size_bytes", "Size of the store on disk (SQLite: the file and "
                "its WAL; PostgreSQL: the database), as last measured.", value=size.bytes)
        yield GaugeMetricFamily(
            "ragmon_store_size_timestamp_seconds", "When the store's rows and size were "
            "last measured.", value=size.measured_at)
        report = self.store.last_retention
        if report is not None and report.finished_at is not None:
            yield GaugeMetricFamily(
                "ragmon_store_retention_timestamp_seconds", "End of this process's last "
                "completed retention pass.", value=report.finished_at)

    def _schedule_families(self) -> Iterator[Metric]:
        interval = GaugeMetricFamily(
            "ragmon_probe_interval_seconds", "Configured time between runs.",
            labels=self.base_labels,
        )
        timeout = GaugeMetricFamily(
            "ragmon_probe_timeout_seconds", "Configured time limit of a run.",
            labels=self.base_labels,
        )
        for name, cfg in self.config.probes.items():
            labels = [name, cfg.kind, getattr(cfg, "target", None) or "", *self._instance]
            interval.add_metric(labels, cfg.interval)
            timeout.add_metric(labels, cfg.timeout)
        yield interval
        yield timeout

    def _run_families(
        self, latest: list[tuple[ProbeRun, list[RunValue]]], last_ok: dict[str, Any]
    ) -> Iterator[Metric]:
        success = GaugeMetricFamily(
            "ragmon_probe_success", "1 when the newest run succeeded.", labels=self.base_labels
        )
        duration = GaugeMetricFamily(
            "ragmon_probe_duration_seconds", "Duration of the newest run.", labels=self.base_labels
        )
        last_run = GaugeMetricFamily(
            "ragmon_probe_last_run_timestamp_seconds", "End of the newest run.",
            labels=self.base_labels,
        )
        last_success = GaugeMetricFamily(
            "ragmon_probe_last_success_timestamp_seconds", "End of the newest successful run.",
            labels=self.base_labels,
        )
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
        for run, values in latest:
            cfg = self.config.probes.get(run.probe)
            if cfg is None or cfg.kind != run.kind:
                continue  # history of a probe no longer configured: not a live signal
            base = [run.probe, run.kind, run.target or "", *self._instance]
            success.add_metric(base, 1.0 if run.status == "ok" else 0.0)
            duration.add_metric(base, (run.finished_at - run.started_at).total_seconds())
            last_run.add_metric(base, run.finished_at.timestamp())
            if run.probe in last_ok:
                last_success.add_metric(base, last_ok[run.probe].timestamp())
            specs = self.metric_specs.get(run.kind, {})
            for value in values:
                spec = specs.get(value.name)
                if spec is None:
                    continue
                family = families.get(value.name)
                if family is None:
                    # a stored ``*_total`` is a count the probe carries from run to run
                    make = CounterMetricFamily if value.name.endswith("_total") \
                        else GaugeMetricFamily
                    family = families[value.name] = make(
                        f"ragmon_{value.name}", spec.help,
                        labels=self.base_labels + list(spec.labels),
                    )
                labels = parse_labels(value.labels)
                family.add_metric(base + [str(labels.get(k, "")) for k in spec.labels], value.value)
        yield from (success, duration, last_run, last_success)
        yield from families.values()


def reload_metrics(registry: CollectorRegistry) -> dict[str, Any]:
    """Config reloads (like Prometheus' own ``prometheus_config_*``): attempts, refusals,
    whether the last one applied and when one last did, and a hash of the files in force."""
    return {
        "reloads": Counter("ragmon_config_reload", "Config reloads attempted (SIGHUP or a "
                           "changed config, secret or golden set file).", registry=registry),
        "failures": Counter("ragmon_config_reload_failures", "Config reloads refused (the "
                            "new config had errors; the running one stayed).",
                            registry=registry),
        "successful": Gauge("ragmon_config_last_reload_successful", "1 when the last reload "
                            "attempt applied (or none happened since start), else 0.",
                            registry=registry),
        "last_success": Gauge("ragmon_config_last_reload_success_timestamp_seconds", "When "
                              "the running config was applied (start or reload).",
                              registry=registry),
        "info": Gauge("ragmon_config_info", "1, labelled with a hash of the config and "
                      "golden set files in force (compare replicas).", ["hash"],
                      registry=registry),
    }


def process_metrics(registry: CollectorRegistry) -> dict[str, Gauge]:
    """Gauges about the daemon itself (build, heartbeat, loaded embedders)."""
    build = Gauge("ragmon_build_info", "ragmon version.", ["version"], registry=registry)
    build.labels(__version__).set(1)
    return {
        "heartbeat": Gauge(
            "ragmon_scheduler_heartbeat_timestamp_seconds",
            "Last time the scheduler ran its heartbeat job.", registry=registry,
        ),
        "embedder_loaded": Gauge(
            "ragmon_embedder_loaded", "1 when the embedding model is in memory.",
            ["embedder"], registry=registry,
        ),
        "start_time": Gauge(
            "ragmon_start_time_seconds", "When the daemon started.", registry=registry
        ),
    }
