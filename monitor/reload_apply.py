"""Applying a validated config to a running daemon (see ``ragmon.monitor.reload``).

What changes at once:
- probe jobs: a removed probe's job goes, an added probe runs within a second, a changed
  schedule (``every``, ``cron``, ``jitter``, ``misfire_grace``) is rescheduled from now;
- probes whose config, target, embedder or golden set entry changed are built again; the
  others are kept (with their caches). A run in flight finishes with the probe, context and
  config it started with, and is stored as usual: a reload never aborts a run;
- embedders and targets whose entry is unchanged are kept (a loaded model stays loaded);
  a replaced target is closed once the runs that started before the reload have ended;
- the scheduler heartbeat, ``scheduler.misfire_grace``, ``logging.level``, the exported
  metrics (``ragmon_probe_*`` of added and removed probes), the store's retention shares;
- each daemon extension: one that returned an object with ``reload(daemon)`` is told;
  one that returned nothing is installed again (its jobs from the previous install are
  removed first); one that returned an object without ``reload`` keeps its start-up
  settings, and the log says a restart applies them.

What needs a restart (:data:`RESTART_ONLY`): the ``store`` and ``server`` sections,
``scheduler.max_workers`` and ``logging.format``. A reload that changes them logs each as
"needs a restart" (the key, never the value: a store URL may hold a password) and keeps
the running value, so everything else in the new config still applies.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.jobstores.base import JobLookupError
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from ragmon.monitor.config import RootConfig
from ragmon.monitor.plugins import Closeable, DaemonExtension
from ragmon.monitor.probe import Probe
from ragmon.monitor.targets import VectorTarget

if TYPE_CHECKING:
    from ragmon.monitor.daemon import Daemon

log = logging.getLogger("ragmon.reload")

#: Settings a running daemon cannot change (the bound socket, the open store, the pool).
RESTART_ONLY: tuple[tuple[str, ...], ...] = (
    ("store",), ("server",), ("deployment",), ("scheduler", "max_workers"),
    ("logging", "format"),
)
_SCHEDULE_FIELDS = ("every", "cron", "jitter", "misfire_grace")


def _get(config: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        config = getattr(config, key, None)
    return config


def keep_restart_only(old: RootConfig, new: RootConfig) -> RootConfig:
    """``new`` with the running values of the settings that need a restart (each one that
    differs is logged by key)."""
    update: dict[str, Any] = {}
    for path in RESTART_ONLY:
        running = _get(old, path)
        if running is None or running == _get(new, path):
            continue
        log.warning("config reload: %s changed; it needs a restart to take effect, the "
                    "running daemon keeps its current value", ".".join(path))
        section, *rest = path
        if rest:
            base = update.get(section, getattr(new, section))
            update[section] = base.model_copy(update={rest[0]: running})
        else:
            update[section] = running
    return new.model_copy(update=update) if update else new


def _dependencies(config: RootConfig, name: str) -> tuple[Any, ...]:
    """A probe's entry and the entries it uses: a change in any means building it again."""
    pcfg = config.probes[name]
    target = config.targets.get(getattr(pcfg, "target", None) or "")
    embedder = getattr(pcfg, "embedder", None) or (target.embedder if target else None)
    golden = config.golden_sets.get(getattr(pcfg, "golden_set", None) or "")
    return pcfg, target, config.embedders.get(embedder or ""), golden


def _schedule(config: RootConfig, name: str) -> tuple[Any, ...]:
    pcfg = config.probes[name]
    return tuple(getattr(pcfg, f) for f in _SCHEDULE_FIELDS) + (config.scheduler.misfire_grace,)


def apply_config(daemon: Daemon, new: RootConfig) -> tuple[set[threading.Thread],
                                                         list[VectorTarget]]:
    """Make ``new`` the daemon's config. Returns the probe threads alive at the switch and
    the targets no longer used by the new config: close those once the threads ended."""
    old = daemon.config
    new = keep_restart_only(old, new)
    context, retired = daemon.context.successor(new)
    runner = daemon.runner
    probes: dict[str, Probe] = {}
    for name, pcfg in new.probes.items():
        kept = runner.probes.get(name)
        if kept is not None and name in old.probes \
                and _dependencies(old, name) == _dependencies(new, name):
            kept.context = context
            probes[name] = kept
        else:
            probes[name] = daemon.plugins.probes.build(pcfg.kind, name, pcfg, context)
    in_flight = runner.live_threads()
    runner.replace(context, probes)
    daemon.config = new
    daemon.context = context
    daemon.collector.config = new
    if daemon.store is not None and daemon.plugins.retention is not None:
        daemon.store.retention_parts = list(daemon.plugins.retention(new))
    if new.logging.level != old.logging.level:
        logging.getLogger().setLevel(new.logging.level.upper())
    _reschedule(daemon, old, new)
    _embedder_gauges(daemon, old, new)
    _reload_extensions(daemon)
    return in_flight, retired


def _reschedule(daemon: Daemon, old: RootConfig, new: RootConfig) -> None:
    scheduler = daemon.scheduler
    assert scheduler is not None
    for name in set(old.probes) - set(new.probes):
        for job_id in (f"probe:{name}", f"probe-first:{name}"):
            try:
                scheduler.remove_job(job_id)
            except JobLookupError:
                pass
    soon = datetime.now(UTC) + timedelta(seconds=1)
    for i, name in enumerate(sorted(new.probes)):
        if name not in old.probes:
            daemon.schedule_probe(scheduler, name, soon + timedelta(seconds=i))
        elif _schedule(old, name) != _schedule(new, name):
            daemon.schedule_probe(scheduler, name)
    if old.scheduler.heartbeat != new.scheduler.heartbeat:
        scheduler.reschedule_job(
            "heartbeat", trigger=IntervalTrigger(seconds=new.scheduler.heartbeat))


def _embedder_gauges(daemon: Daemon, old: RootConfig, new: RootConfig) -> None:
    gauge = daemon._gauges["embedder_loaded"]
    for name in set(old.embedders) - set(new.embedders):
        gauge.remove(name)
    for name in set(new.embedders) - set(old.embedders):
        gauge.labels(name).set_function(functools.partial(daemon._embedder_loaded, name))


@dataclass
class ExtensionParts:
    """What one extension added at its last install (its jobs, HTTP routes, after-run hooks
    and metric collectors), so that installing it again replaces them instead of doubling."""

    installed: Closeable | None = None
    jobs: set[str] = field(default_factory=set)
    routes: dict[str, Any] = field(default_factory=dict)
    hooks: list[Any] = field(default_factory=list)
    collectors: list[Collector] = field(default_factory=list)

    def remove(self, daemon: Daemon) -> None:
        assert daemon.scheduler is not None
        for job_id in self.jobs:
            try:
                daemon.scheduler.remove_job(job_id)
            except JobLookupError:
                pass
        routes = daemon.context.http_routes
        for path, app in self.routes.items():
            if routes.get(path) is app:
                del routes[path]
        for hook in self.hooks:
            if hook in daemon.context.after_run:
                daemon.context.after_run.remove(hook)
        for collector in self.collectors:
            daemon.registry.unregister(collector)


def install_extension(daemon: Daemon, index: int, extension: DaemonExtension) -> None:
    """Install one extension, remembering what it returned and what it added."""
    scheduler, context, registry = daemon.scheduler, daemon.context, daemon.registry
    assert scheduler is not None
    jobs = {job.id for job in scheduler.get_jobs()}
    routes = dict(context.http_routes)
    hooks = list(context.after_run)
    collectors: list[Collector] = []

    def register(collector: Collector) -> None:
        CollectorRegistry.register(registry, collector)
        collectors.append(collector)

    registry.register = register  # type: ignore[method-assign]  # this install only
    try:
        installed = extension(daemon)
    finally:
        del registry.register
    daemon.extension_parts[index] = ExtensionParts(
        installed, {job.id for job in scheduler.get_jobs()} - jobs,
        {p: a for p, a in context.http_routes.items() if routes.get(p) is not a},
        [h for h in context.after_run if h not in hooks], collectors)
    if installed is not None:
        daemon.installed.append(installed)


def _reload_extensions(daemon: Daemon) -> None:
    for index, extension in enumerate(daemon.extensions):
        parts = daemon.extension_parts.get(index, ExtensionParts())
        name = getattr(extension, "__module__", repr(extension))
        try:
            if parts.installed is None:
                parts.remove(daemon)
                install_extension(daemon, index, extension)
            elif callable(getattr(parts.installed, "reload", None)):
                parts.installed.reload(daemon)  # type: ignore[attr-defined]
            else:
                log.warning("config reload: %s cannot reload; it keeps its start-up settings "
                            "until a restart", name)
        except Exception:  # one feature's reload never stops the others or the daemon
            log.exception("config reload: %s failed to apply the new config", name)
