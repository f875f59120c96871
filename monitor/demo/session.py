"""The demo's probe session: the daemon's own parts (context, runner, and the extensions the
daemon installs, alerting among them) on the demo config, driven step by step so each rot
scenario is followed by exactly the runs it needs.

A scenario that changes the config (another truncation on the query side) is applied as
``RAGMON_*`` overrides on a second context, the way an operator's environment would change
it; the healthy context, with its loaded model, is kept for the runs after the revert.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from ragmon.monitor.config import RootConfig
    from ragmon.monitor.context import ProbeContext
    from ragmon.monitor.daemon import Daemon
    from ragmon.monitor.plugins import Plugins
    from ragmon.monitor.probe import ProbeResult
    from ragmon.monitor.runner import Runner
    from ragmon.monitor.store import Store


@dataclass
class Run:
    """One probe run of the session: its result, stored id and wall time."""

    probe: str
    result: ProbeResult
    run_id: int | None
    seconds: float

    def value(self, name: str, **labels: Any) -> float | None:
        for got, got_labels, value in self.result.values:
            if got == name and all(str(got_labels.get(k)) == str(v) for k, v in labels.items()):
                return value
        return None


@dataclass
class _Host:
    """What a daemon extension is installed on: the daemon's parts, without a running
    scheduler or an HTTP listener (the demo runs the probes itself)."""

    config: RootConfig
    store: Store
    context: ProbeContext
    registry: Any
    scheduler: Any


@dataclass
class _Active:
    config: RootConfig
    context: ProbeContext
    runner: Runner
    registry: Any
    installed: list[Any] = field(default_factory=list)
    hooks: list[Any] = field(default_factory=list)

    def detach(self) -> None:
        """Remove what the extensions added (their after-run hooks; they stop)."""
        for hook in self.hooks:
            if hook in self.context.after_run:
                self.context.after_run.remove(hook)
        for part in self.installed:
            part.close(wait=True)
        self.installed, self.hooks = [], []

    def close(self) -> None:
        self.detach()
        self.context.close()


class Session:
    """Runs probes on the demo config; the daemon's extensions see each run."""

    def __init__(self, config_path: Path, plugins: Plugins, environ: Mapping[str, str],
                 store: Store):
        self.path = config_path
        self.plugins = plugins
        self.environ = dict(environ)
        self.store = store
        self.healthy = self._open({})
        self.active = self.healthy

    @property
    def config(self) -> RootConfig:
        return self.active.config

    def _open(self, overrides: Mapping[str, str]) -> _Active:
        from apscheduler.schedulers.background import BackgroundScheduler
        from prometheus_client import CollectorRegistry

        from ragmon.monitor.config import load_config
        from ragmon.monitor.context import ProbeContext
        from ragmon.monitor.runner import Runner

        config = load_config(self.path, self.plugins, {**self.environ, **overrides})
        context = ProbeContext(config, self.store, self.plugins)
        host = _Host(config, self.store, context, CollectorRegistry(), BackgroundScheduler())
        before = list(context.after_run)
        # An extension reads the daemon's config, store, context, registry and scheduler.
        installed = [extension(cast("Daemon", host)) for extension in self.plugins.extensions]
        hooks = [h for h in context.after_run if h not in before]
        runner = Runner(context, CollectorRegistry(), self.plugins.probes)
        return _Active(config, context, runner, host.registry,
                       [i for i in installed if i is not None], hooks)

    def override(self, overrides: Mapping[str, str]) -> None:
        """Run the next probes with these ``RAGMON_*`` overrides on top of the config."""
        self.active = self._open(overrides)

    def restore(self) -> None:
        if self.active is not self.healthy:
            self.active.close()
            self.active = self.healthy

    def for_daemon(self) -> ProbeContext:
        """The healthy context (its model loaded) for the daemon, which installs its own
        extensions on it."""
        self.restore()
        self.healthy.detach()
        return self.healthy.context

    def run(self, probe: str) -> Run:
        started = time.monotonic()
        result, run_id = self.active.runner.run(probe)
        return Run(probe, result, run_id, time.monotonic() - started)

    def probes(self) -> list[str]:
        return list(self.config.probes)

    def firing(self) -> list[str]:
        """The alert rules firing now, as ``ragmon_alerts_firing`` reports them once the
        evaluations of the runs so far are done (alerting evaluates on its own thread)."""
        read = self._firing()
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            time.sleep(0.3)
            again = self._firing()
            if again == read:
                break
            read = again
        return sorted(rule for rule, value in read.items() if value > 0)

    def _firing(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for family in self.active.registry.collect():
            for sample in family.samples:
                if sample.name == "ragmon_alerts_firing":
                    out[sample.labels["rule"]] = out.get(sample.labels["rule"], 0) + sample.value
        return out

    def stop(self, grace: float) -> bool:
        """Refuse new runs and wait up to ``grace`` seconds for the one in flight; True when
        a probe thread is still inside native code (FAISS, torch) after that."""
        runners = {id(a.runner): a.runner for a in (self.active, self.healthy)}.values()
        for runner in runners:
            runner.stop(grace)
        deadline = time.monotonic() + grace
        while any(r.threads_alive() for r in runners) and time.monotonic() < deadline:
            time.sleep(0.1)
        return any(r.threads_alive() for r in runners)

    def close(self) -> None:
        self.restore()
        self.healthy.close()
