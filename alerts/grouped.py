"""Rules across instances: one alert for a probe that many sidecars run, with the count.

Sidecars sharing a store each run the same probe against their own pod's index, under
their own ``deployment.instance``. A rule with ``group_instances: true`` is evaluated on
the newest recent run of every instance at once: it matches while at least
``min_instances`` instances match, its value is how many do, and its state is one row
(instance ``GROUP``) whichever sidecar evaluates it. "3 of 10 pods below the recall floor"
is then one alert naming the three, not ten pages.

An instance counts while its newest run finished within ``STALE_INTERVALS`` intervals of
the probe: a pod that went away stops counting, as its series would go stale in
Prometheus. The read uses the ``(finished_at, id)`` index, so it covers only recent runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from ragmon.alerts.config import RuleConfig
from ragmon.alerts.observations import Observation, observe
from ragmon.monitor.store import RunRecord, parse_labels
from ragmon.monitor.store.models import ProbeRun, RunValue

#: The instance key of a rule's state kept across instances (never a valid instance name).
GROUP = "*"
#: An instance whose newest run is older than this many probe intervals no longer counts.
STALE_INTERVALS = 3.0


@dataclass(frozen=True)
class GroupObservation:
    """What a grouped rule sees: the observation and which instances matched."""

    observation: Observation
    matched: list[str]
    total: list[str]

    def summary(self) -> dict[str, Any]:
        return {"matched": self.matched, "total": len(self.total), "instances": self.total}


def newest_runs(s: Any, probe: str, since: datetime) -> dict[str, RunRecord]:
    """The newest run of each instance of ``probe`` that finished at or after ``since``."""
    ids = select(func.max(ProbeRun.id)).where(
        ProbeRun.finished_at >= since, ProbeRun.probe == probe,
    ).group_by(ProbeRun.instance)
    runs = s.scalars(select(ProbeRun).where(ProbeRun.id.in_(ids))).all()
    values: dict[int, list[tuple[str, dict[str, Any], float]]] = {}
    for v in s.scalars(select(RunValue).where(RunValue.run_id.in_([r.id for r in runs]))):
        values.setdefault(v.run_id, []).append((v.name, parse_labels(v.labels), v.value))
    return {run.instance: RunRecord(
        probe=run.probe, kind=run.kind, target=run.target, started_at=run.started_at,
        finished_at=run.finished_at, status=run.status, error=run.error,
        details=dict(run.details or {}), values=values.get(run.id, []),
        golden_version=run.golden_version,
    ) for run in runs}


def observe_group(s: Any, rule: RuleConfig, now: datetime, interval: float) -> GroupObservation:
    """The rule over the newest recent run of every instance (see the module docstring)."""
    since = now - timedelta(seconds=STALE_INTERVALS * interval)
    matched, seen = [], []
    for instance, record in sorted(newest_runs(s, rule.probe, since).items()):
        found = [o.matched for o in observe(rule, record)]
        if any(m is not None for m in found):
            seen.append(instance)
        if any(found):
            matched.append(instance)
    verdict = None if not seen else len(matched) >= rule.min_instances
    return GroupObservation(Observation({}, verdict, float(len(matched))), matched, seen)
