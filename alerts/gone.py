"""Instances that stopped reporting: their alerts resolve.

A sidecar's ``deployment.instance`` defaults to its pod's name, and a Deployment names its
pods anew on every rollout or restart: the old name never runs again, and its per-instance
alert state would stay ``firing`` for good. When a daemon evaluates a rule, it also looks at
the rule's active states of other instances: an instance whose newest run of the probe
finished more than ``STALE_INTERVALS`` probe intervals ago (the same horizon after which a
grouped rule stops counting it, :mod:`alerts.grouped`) has its firing alert resolved, with
the reason in the notice, and a pending one dropped. An instance whose runs fail still
reports: its alerts stay. The states are locked and re-read first, and the notice has a
unique key, so however many daemons see it, it resolves and is told once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from ragmon.alerts.config import RuleConfig
from ragmon.alerts.grouped import GROUP, STALE_INTERVALS
from ragmon.alerts.tables import AlertState
from ragmon.monitor.common import utc
from ragmon.monitor.store import RunRecord, Store, parse_labels
from ragmon.monitor.store.models import ProbeRun, RunValue


def reason(instance: str, probe: str) -> str:
    """The reason a gone instance's alert resolved (in the notice's annotations)."""
    return (f"instance {instance} stopped reporting (no run of {probe} for "
            f"{STALE_INTERVALS:g} intervals)")


def active_elsewhere(s: Any, rule: str, instance: str, states: tuple[str, ...]) -> list[str]:
    """Other instances with an active state of ``rule`` (read without a lock)."""
    return sorted(set(s.scalars(select(AlertState.instance).where(
        AlertState.rule == rule, AlertState.instance.not_in((instance, GROUP)),
        AlertState.state.in_(states)))))


def newest_run(s: Any, probe: str, instance: str) -> ProbeRun | None:
    """The newest run of ``probe`` by ``instance`` (one entry of the (probe, instance, id)
    index)."""
    run_id = s.scalar(select(func.max(ProbeRun.id)).where(
        ProbeRun.probe == probe, ProbeRun.instance == instance))
    return None if run_id is None else s.get(ProbeRun, run_id)


def gone(s: Any, probe: str, instances: list[str], before: datetime) -> dict[str, ProbeRun | None]:
    """Of ``instances``, those whose newest run of ``probe`` finished before ``before`` (or
    that have none left), with that run."""
    out: dict[str, ProbeRun | None] = {}
    for instance in instances:
        run = newest_run(s, probe, instance)
        if run is None or utc(run.finished_at) < before:
            out[instance] = run
    return out


def as_record(s: Any, run: ProbeRun) -> RunRecord:
    """A stored run as the runner handed it to the engine (for the notice's context)."""
    values = [(v.name, parse_labels(v.labels), v.value)
              for v in s.scalars(select(RunValue).where(RunValue.run_id == run.id))]
    return RunRecord(
        probe=run.probe, kind=run.kind, target=run.target, started_at=run.started_at,
        finished_at=run.finished_at, status=run.status, error=run.error,
        details=dict(run.details or {}), values=values, golden_version=run.golden_version,
    )


def resolve(store: Store, name: str, rule: RuleConfig, now: datetime, before: datetime,
            enqueue: Callable[..., int]) -> int:
    """Resolve rule ``name``'s active states of the instances that have not run its probe
    since ``before``; ``enqueue`` is the engine's (it queues the notice once per sink).
    Returns the notifications queued."""
    active = ("pending", "firing")
    with store.session() as s:
        if not active_elsewhere(s, name, store.instance, active):
            return 0
    queued = 0
    with store.session() as s:
        found = gone(s, rule.probe, active_elsewhere(s, name, store.instance, active), before)
        if not found:
            return 0
        rows = s.scalars(select(AlertState).where(
            AlertState.rule == name, AlertState.instance.in_(sorted(found)))
            .order_by(AlertState.instance, AlertState.fingerprint).with_for_update()).all()
        for row in rows:  # re-read under the lock: only the first daemon sees it active
            if row.state == "pending":
                row.state, row.active_since = "inactive", None
            if row.state != "firing":
                continue
            run = found[row.instance]
            details = {**(row.details or {}), "resolved_reason": reason(row.instance, rule.probe)}
            row.state, row.resolved_at, row.last_evaluated_at = "resolved", now, now
            row.details = details
            record = as_record(s, run) if run is not None else RunRecord(
                probe=rule.probe, kind="", target="", started_at=now, finished_at=now,
                status="gone", error=None, details={}, values=[])
            queued += enqueue(s, name, rule, row, details, record,
                              None if run is None else run.id, now)
    return queued
