"""The demo's probe session: the daemon's own parts (context, runner, alert engine) on the
demo config, driven step by step so each rot scenario is followed by exactly the runs it needs.

A scenario that changes the config (another truncation on the query side) is applied as
``RAGMON_*`` overrides on a second context, the way an operator's environment would change
it; the healthy context, with its loaded model, is kept for the runs after the revert.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragmon.monitor.config import RootConfig
    from ragmon.monitor.context import ProbeContext
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
class _Active:
    config: RootConfig
    context: ProbeContext
    runner: Runner
    overrides: dict[str, str] = field(default_factory=dict)
    hook: Any = None


class Session:
    """Runs probes on the demo config, with alert rules evaluated after each run."""

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
        from prometheus_client import CollectorRegistry

        from ragmon.alerts.config import alerts_section
        from ragmon.alerts.engine import AlertEngine
        from ragmon.monitor.app import load_config
        from ragmon.monitor.context import ProbeContext
        from ragmon.monitor.runner import Runner

        config = load_config(self.path, {**self.environ, **overrides}, self.plugins)
        context = ProbeContext(config, self.store, self.plugins)
        alerts = alerts_section(config)
        hook = None
        if alerts.enabled and alerts.rules:
            engine = AlertEngine(alerts, self.store)

            def hook(probe: str, record: Any, run_id: int | None) -> None:
                # In the probe's thread: the demo reads the alert state right after the run.
                engine.evaluate(probe, record, run_id)

            context.after_run.append(hook)
        runner = Runner(context, CollectorRegistry(), self.plugins.probes)
        return _Active(config, context, runner, dict(overrides), hook)

    def for_daemon(self) -> ProbeContext:
        """The healthy context (its model loaded) for the daemon, which evaluates the alert
        rules itself from now on."""
        self.restore()
        if self.healthy.hook in self.healthy.context.after_run:
            self.healthy.context.after_run.remove(self.healthy.hook)
        return self.healthy.context

    def override(self, overrides: Mapping[str, str]) -> None:
        """Run the next probes with these ``RAGMON_*`` overrides on top of the config."""
        self.active = self._open(overrides)

    def restore(self) -> None:
        if self.active is not self.healthy:
            self.active.context.close()
            self.active = self.healthy

    def run(self, probe: str) -> Run:
        started = time.monotonic()
        result, run_id = self.active.runner.run(probe)
        return Run(probe, result, run_id, time.monotonic() - started)

    def probes(self) -> list[str]:
        return list(self.config.probes)

    def fired_since(self, since: datetime) -> list[str]:
        """Alert rules that became firing at or after ``since``."""
        from sqlalchemy import select

        from ragmon.alerts.tables import AlertState

        with self.store.session() as s:
            rows = s.scalars(select(AlertState).where(AlertState.fired_at.is_not(None))).all()
            return sorted({r.rule for r in rows if r.fired_at is not None
                           and _utc(r.fired_at) >= since})

    def firing(self) -> list[str]:
        from sqlalchemy import select

        from ragmon.alerts.tables import AlertState

        with self.store.session() as s:
            return sorted(set(s.scalars(select(AlertState.rule)
                                        .where(AlertState.state == "firing")).all()))

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
        self.healthy.context.close()


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
