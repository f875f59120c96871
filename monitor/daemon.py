"""The daemon: APScheduler (UTC) with one job per probe, the HTTP listener, clean shutdown.

Start-up order: bind the listen address, store (migrate or check the schema), probes,
metrics, scheduler, then serve HTTP.
SIGTERM/SIGINT set an event the main thread waits on; shutdown stops new runs, waits up to
``server.shutdown_grace`` for runs in flight (a run is stored in one transaction, so it is
either whole or absent), then exits 0. Signal handlers are installed explicitly, so this
works as PID 1 in a container, where default dispositions do not apply. SIGHUP asks the
config reloader (``monitor/reload.py``) to load and apply the config file again.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CollectorRegistry

from ragmon.monitor.config import RootConfig
from ragmon.monitor.context import ProbeContext
from ragmon.monitor.http import App, HttpServer
from ragmon.monitor.metrics import StoreCollector, process_metrics
from ragmon.monitor.plugins import Closeable, DaemonExtension
from ragmon.monitor.reload import ConfigReloader
from ragmon.monitor.reload_apply import ExtensionParts, install_extension
from ragmon.monitor.runner import Runner
from ragmon.monitor.slots import ANCHOR, SharedSchedule, probe_trigger
from ragmon.monitor.store import Store
from ragmon.monitor.store.claims import Claims

log = logging.getLogger("ragmon.daemon")


def _exit_now() -> None:
    """Exit 0 without finalising the interpreter (see ``Daemon.serve_forever``)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


class Daemon:
    def __init__(self, config: RootConfig, registry: CollectorRegistry | None = None,
                 extensions: Sequence[DaemonExtension] | None = None,
                 context: ProbeContext | None = None, *, settle: bool = False):
        """``extensions`` are installed at start (default: the plugins' the config was
        validated with). ``context`` lets a caller that already loaded embedders and targets
        (the demo) hand them over instead of loading them twice. ``settle``: the process is
        this daemon's alone (``ragmon run``), so the heap is settled after each probe's first
        run (:func:`ragmon.monitor.runner.settle_heap`)."""
        self.config = config
        self._settle = settle
        self.plugins = config.plugins
        self.extensions = list(self.plugins.extensions if extensions is None else extensions)
        self._given_context = context
        self.registry = registry or CollectorRegistry()
        self.stop_event = threading.Event()
        self.store: Store | None = None
        self.scheduler: BackgroundScheduler | None = None
        self.http: HttpServer | None = None
        self._gauges = process_metrics(self.registry)
        self._heartbeat = 0.0
        self._stopping = threading.Event()  # set at shutdown: claims and jitter waits stop
        #: What the extensions returned; closed at shutdown, before the store.
        self.installed: list[Closeable] = []
        #: Per extension (by index): what it returned and the jobs it added (for reloads).
        self.extension_parts: dict[int, ExtensionParts] = {}
        self.reloader: ConfigReloader | None = None
        self._reload_requested = False

    # --- health ----------------------------------------------------------------------------
    def healthz(self) -> tuple[bool, str]:
        if self.scheduler is None or not self.scheduler.running:
            return False, "scheduler is not running"
        age = time.time() - self._heartbeat
        limit = 3 * self.config.scheduler.heartbeat + 5
        if age > limit:
            return False, f"scheduler heartbeat is {age:.0f}s old (limit {limit:.0f}s)"
        return True, "ok"

    def readyz(self) -> tuple[bool, str]:
        if self.store is None:
            return False, "store not open"
        if not self.store.at_head():
            return False, "store schema is not at head (or the store is unreachable)"
        return True, "ok"

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        cfg = self.config
        # Bound first: a taken port fails the start (one line, exit 1) before anything runs.
        app = App(self.registry, self.healthz, self.readyz)
        self.http = HttpServer(app, cfg.server.host, cfg.server.port, cfg.server)
        self.store = Store(cfg.store.url.get_secret_value(), instance=cfg.deployment.name,
                           pool_size=cfg.store.pool_size, max_overflow=cfg.store.max_overflow,
                           pool_timeout=float(cfg.store.pool_timeout),
                           statement_timeout=cfg.store.statement_timeout)
        if cfg.store.migrate_on_start:
            self.store.migrate()
        else:
            self.store.require_head()
        if self.plugins.retention is not None:
            self.store.add_retention(*self.plugins.retention(cfg))
        self.context = self._given_context or ProbeContext(cfg, self.store, self.plugins)
        app.routes = self.context.http_routes
        # Replicas sharing the store run each schedule slot once between them.
        self.claims = Claims(self.store, cfg.scheduler.replica, cfg.deployment.name)
        self.context.claims = self.claims
        self.runner = Runner(self.context, self.registry, self.plugins.probes, self.claims,
                             settle=self._settle)
        self.schedule = SharedSchedule(lambda: self.config, self.runner, self.claims,
                                       self.registry, self._stopping)
        self.collector = StoreCollector(self.store, cfg, self.plugins.metric_specs())
        self.registry.register(self.collector)
        self._gauges["start_time"].set(time.time())
        for name in cfg.embedders:
            self._gauges["embedder_loaded"].labels(name).set_function(
                functools.partial(self._embedder_loaded, name)
            )
        self.scheduler = self._build_scheduler()
        for index, extension in enumerate(self.extensions):
            install_extension(self, index, extension)
        self.reloader = ConfigReloader(self)
        self._beat()
        self.scheduler.start()
        self.reloader.start()
        if self._reload_requested:  # SIGHUP while starting
            self.reloader.request()
        self.http.start()
        log.info("ragmon started: %d probes, store %s, listening on %s:%d%s",
                 len(cfg.probes), self.store.safe_url, cfg.server.host, self.http.port,
                 f", sidecar instance {self.store.instance!r}" if self.store.instance else "")

    def _build_scheduler(self) -> BackgroundScheduler:
        cfg = self.config
        scheduler = BackgroundScheduler(
            timezone="UTC",
            executors={"default": ThreadPoolExecutor(cfg.scheduler.max_workers + 1)},
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": int(cfg.scheduler.misfire_grace)},
        )
        now = datetime.now(UTC)
        for i, name in enumerate(sorted(cfg.probes)):  # first runs right after start
            self.schedule_probe(scheduler, name, now + timedelta(seconds=1 + i))
        scheduler.add_job(self._beat, IntervalTrigger(seconds=cfg.scheduler.heartbeat),
                          id="heartbeat", name="heartbeat")
        store = cfg.store
        scheduler.add_job(
            self._claimed_prune, IntervalTrigger(seconds=store.retention_interval,
                                                 start_date=ANCHOR), id="retention",
            name="retention", next_run_time=now + timedelta(
                seconds=5 if store.retention_at_start else store.retention_interval))
        return scheduler

    def schedule_probe(self, scheduler: BackgroundScheduler, name: str,
                       first_run: datetime | None = None) -> None:
        """Add (or replace) probe ``name``'s job; with ``first_run``, the slot under way
        then runs too (if no replica ran it yet), else the next slot is the first."""
        pcfg = self.config.probes[name]
        grace = int(pcfg.misfire_grace or self.config.scheduler.misfire_grace)
        # The schedule's own fire times stay on the shared slots (a first run given as its
        # next_run_time would shift every later fire by the start's offset).
        scheduler.add_job(
            self.schedule.fire, probe_trigger(pcfg, name), args=[name], id=f"probe:{name}",
            name=name, replace_existing=True, misfire_grace_time=grace,
        )
        if first_run is not None:
            scheduler.add_job(self.schedule.fire, "date", run_date=first_run, args=[name],
                              id=f"probe-first:{name}", name=f"{name} (first run)",
                              replace_existing=True, misfire_grace_time=grace)

    def _embedder_loaded(self, name: str) -> float:
        return float(name in self.context.loaded_embedders())

    def _beat(self) -> None:
        self._heartbeat = time.time()
        self._gauges["heartbeat"].set(self._heartbeat)

    def _claimed_prune(self) -> None:
        """Retention runs once per period across replicas: the one that claims it."""
        self.schedule.run_job("retention", float(self.config.store.retention_interval),
                              self._prune)

    def _prune(self) -> None:
        """The retention job: the store's history and the features' (the composition root
        added their parts); logs what was removed and what was kept although older."""
        assert self.store is not None
        try:
            report = self.store.prune(self.config.store.retention)
        except Exception as exc:
            log.warning("retention: %s", exc)
            return
        if report.errors:
            log.warning("retention: %s", report.summary())
        elif any(report.removed.values()) or any(report.kept.values()):
            log.info("retention: %s", report.summary())

    def serve_forever(self) -> int:
        """Run until SIGTERM/SIGINT; return the exit code (0 on a clean shutdown).

        When a probe thread is still running after the shutdown grace (inside FAISS or
        torch, which cannot be interrupted), the process ends with ``os._exit(0)`` once the
        store is closed and the logs are flushed: letting the interpreter finalise under a
        running native thread aborts the process (SIGABRT, exit 134), which Kubernetes counts
        as a crash. Nothing is lost: a run is stored in one transaction or not at all. A
        second signal exits at once, the same way."""
        def on_signal(signum: int, _frame: FrameType | None) -> None:
            if self.stop_event.is_set():
                log.warning("received %s again, exiting now", signal.Signals(signum).name)
                _exit_now()
            log.info("received %s, shutting down", signal.Signals(signum).name)
            self.stop_event.set()

        def on_hangup(_signum: int, _frame: FrameType | None) -> None:
            self._reload_requested = True
            if self.reloader is not None:
                self.reloader.request()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGHUP, on_hangup)
        self.start()
        while not self.stop_event.wait(1.0):
            pass
        self.shutdown()
        runner: Runner | None = getattr(self, "runner", None)
        running = runner.threads_alive() if runner is not None else 0
        if running:
            log.warning("%d probe run(s) still inside native code after the shutdown grace; "
                        "exiting without waiting for them (nothing of them is stored)", running)
            _exit_now()
        return 0

    def shutdown(self) -> None:
        grace = float(self.config.server.shutdown_grace)
        self._stopping.set()
        if self.reloader is not None:
            self.reloader.close()
        if hasattr(self, "runner"):
            self.runner.stop(grace)
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
            self.runner.wait_idle(grace + 1)
        if self.http is not None:
            self.http.stop()
        for extension in self.installed:
            try:
                extension.close(wait=False)
            except Exception:
                log.exception("closing %r failed", extension)
        runner: Runner | None = getattr(self, "runner", None)
        if hasattr(self, "context") and not (runner and runner.threads_alive()):
            # A target is not closed under a probe thread still searching it (a freed FAISS
            # index under a running search would crash the process, not stop it).
            self.context.close()
        if self.store is not None:
            self.store.close()
        log.info("ragmon stopped")
