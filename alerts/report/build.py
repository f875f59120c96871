"""What the report says, gathered from the store for one period and the one before it.

Everything here is read back from SQL (probe runs, their values and per-query rows, the
drift statistics, the canary's references, the alert states), so a report built by the
daemon, the CLI or another replica says the same thing. Nothing is drawn here; the charts
and the text come from :mod:`ragmon.alerts.report.render`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from ragmon.alerts.report.model import Period
from ragmon.alerts.report.sources import (
    DriftPoint,
    Episode,
    GoldenVersion,
    alert_episodes,
    drift_points,
    golden_versions,
)
from ragmon.monitor.common import utc
from ragmon.monitor.config import RootConfig
from ragmon.monitor.store import Store
from ragmon.monitor.store.models import ProbeRun, RunValue


@dataclass
class Run:
    """One stored run as the report reads it: when, how it ended and its values, keyed by
    ``(name, canonical labels)``."""

    id: int
    probe: str
    kind: str
    target: str | None
    started_at: datetime
    status: str
    error: str | None
    details: dict[str, Any]
    golden_version: str | None
    embedder_fingerprint: str | None
    values: dict[tuple[str, str], float] = field(default_factory=dict)
    #: The sidecar that ran it ("" for standalone replicas, which share one history).
    instance: str = ""

    def value(self, name: str, **labels: Any) -> float | None:
        key = ",".join(f"{k}={labels[k]}" for k in sorted(labels))
        return self.values.get((name, key))

    def labelled(self, name: str) -> dict[str, float]:
        """Every value of ``name``, by its canonical labels."""
        return {labels: v for (n, labels), v in self.values.items() if n == name}


def runs_in(store: Store, period: Period, probes: Iterable[str] | None = None) -> list[Run]:
    """The runs that started in ``period`` (of ``probes``, or of every probe), oldest first,
    with their values."""
    with store.session() as s:
        q = select(ProbeRun).where(ProbeRun.started_at >= period.since,
                                   ProbeRun.started_at < period.until)
        if probes is not None:
            q = q.where(ProbeRun.probe.in_(sorted(set(probes))))
        rows = list(s.scalars(q.order_by(ProbeRun.started_at, ProbeRun.id)).all())
        values: dict[int, dict[tuple[str, str], float]] = {}
        ids = [r.id for r in rows]
        for start in range(0, len(ids), 500):  # bounded IN lists on any backend
            # plain rows, not ORM objects: a week of 5-minute runs is ~50,000 values
            for run_id, name, labels, value in s.execute(
                    select(RunValue.run_id, RunValue.name, RunValue.labels, RunValue.value)
                    .where(RunValue.run_id.in_(ids[start:start + 500]))):
                values.setdefault(run_id, {})[(name, labels)] = value
    return [Run(r.id, r.probe, r.kind, r.target, utc(r.started_at), r.status, r.error,
                r.details or {}, r.golden_version, r.embedder_fingerprint,
                values.get(r.id, {}), r.instance or "") for r in rows]


@dataclass
class ProbeHistory:
    """One probe's runs in the period and in the period before."""

    name: str
    kind: str
    target: str | None
    runs: list[Run]
    previous: list[Run]
    period: Period

    @property
    def span(self) -> tuple[datetime, datetime]:
        """The period's bounds, which every chart of the report spans."""
        return self.period.since, self.period.until

    @property
    def ok(self) -> list[Run]:
        return [r for r in self.runs if r.status == "ok"]

    @property
    def instances(self) -> list[str]:
        """The sidecars whose runs these are (``[""]`` for standalone replicas)."""
        return sorted({r.instance for r in self.runs}) or [""]

    def of(self, instance: str, previous: bool = False) -> list[Run]:
        """The successful runs of one instance, in the period (or the one before)."""
        return [r for r in (self.previous if previous else self.runs)
                if r.instance == instance and r.status == "ok"]

    @property
    def failed(self) -> list[Run]:
        return [r for r in self.runs if r.status != "ok"]


@dataclass
class ReportData:
    """Everything the report says about one period."""

    period: Period
    generated_at: datetime
    probes: list[ProbeHistory]
    drift: list[DriftPoint] = field(default_factory=list)
    drift_before: list[DriftPoint] = field(default_factory=list)
    alerts: list[Episode] = field(default_factory=list)
    golden: list[GoldenVersion] = field(default_factory=list)

    @property
    def total_runs(self) -> int:
        return sum(len(p.runs) for p in self.probes)

    @property
    def failed_runs(self) -> int:
        return sum(len(p.failed) for p in self.probes)


def build(store: Store, config: RootConfig, period: Period, now: datetime) -> ReportData:
    """Gather the period's history of every configured probe (and of any other probe that
    ran in the period: a probe removed from the config mid-week still had runs)."""
    current = runs_in(store, period)
    previous = runs_in(store, period.previous())
    names = list(config.probes)
    names += sorted({r.probe for r in current} - set(names))
    probes = []
    for name in names:
        mine = [r for r in current if r.probe == name]
        before = [r for r in previous if r.probe == name]
        cfg = config.probes.get(name)
        kind = cfg.kind if cfg is not None else (mine or before)[0].kind if (mine or before) \
            else "?"
        target = getattr(cfg, "target", None) if cfg is not None else \
            next((r.target for r in mine), None)
        probes.append(ProbeHistory(name, kind, target, mine, before, period))
    data = ReportData(period, now, probes)
    if not current:
        return data  # nothing ran: the report says only that
    data.drift = drift_points(store, period)
    data.drift_before = drift_points(store, period.previous())
    data.alerts = alert_episodes(store, period)
    golden = {str(r.details["golden"]["name"]) for r in current
              if isinstance(r.details.get("golden"), dict) and r.details["golden"].get("name")}
    data.golden = golden_versions(store, golden)
    return data


__all__ = ["ProbeHistory", "ReportData", "Run", "build", "runs_in"]
