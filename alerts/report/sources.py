"""Readers of the features' own tables for a report period: drift statistics with the
clusters that moved, alert episodes, golden set versions and their query texts.

Each returns plain dataclasses, so the sections never hold a session open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select

from ragmon.alerts.report.model import Period
from ragmon.alerts.tables import AlertNotification, AlertState
from ragmon.monitor.common import utc
from ragmon.monitor.store import Store
from ragmon.probes.drift.tables import DriftClusterShift, DriftStatistic
from ragmon.probes.recall.tables import GoldenSetVersion

#: Ids per IN list: bounded statements on any backend.
CHUNK = 500


@dataclass
class Shift:
    """A cluster that grew or shrank in one window, with example texts."""

    direction: str
    label: str | None
    reference_share: float
    current_share: float
    examples: list[str]


@dataclass
class DriftPoint:
    """One method's verdict on one window."""

    id: int
    probe: str
    source: str
    method: str
    window_end: datetime
    statistic: float
    p_value: float | None
    drifted: bool
    alarm: bool
    details: dict[str, Any]
    shifts: list[Shift] = field(default_factory=list)
    #: The sidecar whose window it was ("" for standalone replicas).
    instance: str = ""


def drift_points(store: Store, period: Period) -> list[DriftPoint]:
    """Every drift statistic whose window ended in ``period``, oldest first, with the
    cluster shifts stored for it."""
    with store.session() as s:
        rows = s.scalars(select(DriftStatistic).where(
            DriftStatistic.window_end >= period.since, DriftStatistic.window_end < period.until)
            .order_by(DriftStatistic.window_end, DriftStatistic.id)).all()
        points = [DriftPoint(r.id, r.probe, r.source, r.method, utc(r.window_end),
                             r.statistic, r.p_value, bool(r.drifted), bool(r.alarm),
                             dict(r.details or {}), instance=r.instance or "") for r in rows]
        clustered = [p for p in points if p.method == "clusters"]
        by_id = {p.id: p for p in clustered}
        ids = list(by_id)
        for start in range(0, len(ids), CHUNK):
            shifts = s.scalars(select(DriftClusterShift).where(
                DriftClusterShift.statistic_id.in_(ids[start:start + CHUNK]))
                .order_by(DriftClusterShift.statistic_id, DriftClusterShift.direction,
                          DriftClusterShift.rank)).all()
            for sh in shifts:
                by_id[sh.statistic_id].shifts.append(Shift(
                    sh.direction, sh.label, sh.reference_share, sh.current_share,
                    _example_texts(sh.examples or [])))
    return points


def _example_texts(examples: list[Any]) -> list[str]:
    """The texts (else the ids) of a cluster's stored examples."""
    out = []
    for e in examples:
        if isinstance(e, dict):
            e = e.get("text") or e.get("id")
        if e:
            out.append(str(e))
    return out


@dataclass
class Episode:
    """One alert episode that fired or resolved in (or spans) the period."""

    rule: str
    labels: dict[str, Any]
    summary: str
    fired_at: datetime | None
    resolved_at: datetime | None
    severity: str = "warning"

    def duration(self, until: datetime) -> float | None:
        """Seconds it fired: to its resolution, or to ``until`` while it still fires."""
        if self.fired_at is None:
            return None
        return ((self.resolved_at or until) - self.fired_at).total_seconds()


def alert_episodes(store: Store, period: Period) -> list[Episode]:
    """Alert episodes that fired or resolved in ``period``, or still fire in it.

    The outbox keeps every told transition (one row per sink, and repeats): an episode is
    its rule, its label set and when it became active. The rule state adds the newest
    episode of each alert, which is the only record when no sink is configured."""
    episodes: dict[tuple[str, str, str], Episode] = {}
    with store.session() as s:
        notes = s.scalars(select(AlertNotification).where(
            AlertNotification.created_at < period.until).where(
            AlertNotification.created_at >= period.since - period.length * 4)
            .order_by(AlertNotification.created_at, AlertNotification.id)).all()
        for n in notes:
            payload = n.payload or {}
            key = (n.rule, n.fingerprint, str(payload.get("starts_at")))
            ep = episodes.get(key)
            if ep is None:
                ep = episodes[key] = Episode(
                    n.rule, dict(payload.get("labels") or {}),
                    str((payload.get("annotations") or {}).get("summary") or n.rule), None,
                    None, str((payload.get("labels") or {}).get("severity", "warning")))
            if n.event == "firing" and ep.fired_at is None:
                ep.fired_at = utc(n.created_at)
            elif n.event == "resolved":
                ep.resolved_at = utc(n.created_at)
        states = s.scalars(select(AlertState).where(or_(
            AlertState.state == "firing", AlertState.fired_at >= period.since - period.length * 4
        ))).all()
        for st in states:
            if st.fired_at is None:
                continue
            fired = utc(st.fired_at)
            if any(e.rule == st.rule and k[1] == st.fingerprint and e.fired_at == fired
                   for k, e in episodes.items()):
                continue
            key = (st.rule, st.fingerprint, fired.isoformat())
            resolved = utc(st.resolved_at) if st.resolved_at else None
            labels = dict(st.labels or {})
            episodes[key] = Episode(st.rule, labels, _state_summary(st), fired, resolved,
                                    str(labels.get("severity", "warning")))
    return sorted((e for e in episodes.values() if _touches(e, period)),
                  key=lambda e: (e.fired_at or period.since, e.rule))


def _state_summary(st: AlertState) -> str:
    """What an alert known only from its state was about: its labels and last value."""
    labels = ", ".join(f"{k}={v}" for k, v in sorted((st.labels or {}).items())
                       if k not in ("alertname", "severity"))
    value = (st.details or {}).get("value")  # the newest evaluation's: only while firing
    return labels + (f"; value {value}" if value is not None and st.state == "firing" else "")


def _touches(ep: Episode, period: Period) -> bool:
    if ep.fired_at is None or ep.fired_at >= period.until:
        return False
    return ep.resolved_at is None or ep.resolved_at >= period.since


@dataclass
class GoldenVersion:
    name: str
    version: str
    created_at: datetime
    queries: int
    texts: dict[str, str]


def golden_versions(store: Store, names: set[str]) -> list[GoldenVersion]:
    """Every stored version of the golden sets ``names``, oldest first, with query texts."""
    if not names:
        return []
    with store.session() as s:
        rows = s.scalars(select(GoldenSetVersion).where(GoldenSetVersion.name.in_(sorted(names)))
                         .order_by(GoldenSetVersion.created_at, GoldenSetVersion.id)).all()
        return [GoldenVersion(r.name, r.version, utc(r.created_at), len(r.queries or []),
                              _texts(r.queries or [])) for r in rows]


def _texts(queries: list[Any]) -> dict[str, str]:
    out = {}
    for q in queries:
        if isinstance(q, dict) and q.get("id") is not None and q.get("query"):
            out[str(q["id"])] = str(q["query"])
    return out


__all__ = ["DriftPoint", "Episode", "GoldenVersion", "Shift", "alert_episodes",
           "drift_points", "golden_versions"]
