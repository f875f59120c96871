"""Rule evaluation after each probe run: inactive -> pending -> firing -> resolved, in SQL.

Each rule is evaluated in one transaction that locks the rule's state rows (``SELECT ...
FOR UPDATE`` on PostgreSQL; SQLite has one writer), so replicas sharing a store see each
other's transitions. A transition that must be told (firing, a repeat, resolved) writes
one outbox row per sink with a unique ``dedup_key`` in the same transaction; the delivery
worker sends it. Because state and outbox live in SQL, a restart neither re-notifies nor
forgets a firing alert.

State is kept per (rule, instance): a sidecar's alerts are its own, labelled
``ragmon_instance``. A rule with ``group_instances`` is one alert across instances
(:mod:`alerts.grouped`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ragmon.alerts import gone
from ragmon.alerts.config import AlertsConfig, RuleConfig
from ragmon.alerts.explain import context_facts
from ragmon.alerts.grouped import GROUP, STALE_INTERVALS, observe_group
from ragmon.alerts.metrics import AlertStats
from ragmon.alerts.observations import Observation, fingerprint, instance_labels, observe
from ragmon.alerts.sinks import Notification, build_sink
from ragmon.alerts.tables import AlertNotification, AlertState
from ragmon.alerts.templates import render
from ragmon.monitor.common import iso, jsonable, utc
from ragmon.monitor.store import RunRecord, Store, insert_ignore

log = logging.getLogger("ragmon.alerts")

ACTIVE = ("pending", "firing")


class AlertEngine:
    """Evaluates the configured rules against each stored run."""

    def __init__(
        self,
        config: AlertsConfig,
        store: Store,
        stats: AlertStats | None = None,
        on_enqueue: Callable[[], None] | None = None,
        intervals: Mapping[str, float] | None = None,
    ):
        self.config = config
        self.store = store
        #: Seconds between runs per probe: how recent an instance's run must be to count.
        self.intervals = dict(intervals or {})
        self.stats = stats or AlertStats()
        self.on_enqueue = on_enqueue
        self._resolved_wanted = {
            name: build_sink(name, cfg).send_resolved for name, cfg in config.sinks.items()
        }

    def evaluate(self, probe: str, record: RunRecord, run_id: int | None = None) -> int:
        """Evaluate every rule on ``probe``; returns the number of notifications queued.

        A rule that fails is logged and counted; the other rules still run.
        """
        queued = 0
        for name, rule in self.config.rules.items():
            if rule.probe != probe:
                continue
            try:
                queued += self._evaluate_rule(name, rule, record, run_id)
                if not rule.group_instances:
                    queued += self._resolve_gone(name, rule, utc(record.finished_at))
            except Exception as exc:  # noqa: BLE001 - one rule must not stop the others
                self.stats.evaluation_failed()
                log.error("alert rule %r could not be evaluated: %s", name, exc)
        if queued and self.on_enqueue is not None:
            self.on_enqueue()
        return queued

    # --- one rule ------------------------------------------------------------------------
    def _evaluate_rule(
        self, name: str, rule: RuleConfig, record: RunRecord, run_id: int | None
    ) -> int:
        now = utc(record.finished_at)
        if rule.group_instances:
            return self._evaluate_group(name, rule, record, run_id, now)
        instance = self.store.instance
        observed: dict[str, tuple[dict[str, str], Observation]] = {}
        for obs in observe(rule, record):
            labels = instance_labels(name, rule, record, obs.series)
            if instance:
                labels["ragmon_instance"] = instance
            observed[fingerprint(labels)] = (labels, obs)
        queued = 0
        with self.store.session() as s:
            # Rows are created and locked in one order, so replicas cannot deadlock.
            for fp, (labels, _) in sorted(observed.items()):
                insert_ignore(s, AlertState, dict(
                    rule=name, instance=instance, fingerprint=fp, labels=labels,
                    state="inactive", details={},
                ), ["rule", "instance", "fingerprint"])
            rows = s.scalars(
                select(AlertState).where(AlertState.rule == name, AlertState.instance == instance)
                .order_by(AlertState.fingerprint).with_for_update()
            ).all()
            for row in rows:
                if row.last_evaluated_at is not None and now < utc(row.last_evaluated_at):
                    continue  # an older run evaluated late (another replica got further)
                if row.fingerprint in observed:
                    obs = observed[row.fingerprint][1]
                elif row.state in ACTIVE and record.status == "ok":
                    obs = Observation({}, False, None)  # the series is gone: not alerting
                else:
                    continue
                queued += self._step(s, name, rule, row, obs, record, run_id, now)
        return queued

    def _evaluate_group(self, name: str, rule: RuleConfig, record: RunRecord,
                        run_id: int | None, now: datetime) -> int:
        """One state row for the rule across instances, judged on every instance's newest
        run, read after the row is locked so concurrent sidecars evaluate in turn."""
        labels = instance_labels(name, rule, record, dict(rule.match))  # no instance label
        fp = fingerprint(labels)
        with self.store.session() as s:
            insert_ignore(s, AlertState, dict(
                rule=name, instance=GROUP, fingerprint=fp, labels=labels, state="inactive",
                details={},
            ), ["rule", "instance", "fingerprint"])
            row = s.scalars(select(AlertState).where(
                AlertState.rule == name, AlertState.instance == GROUP,
                AlertState.fingerprint == fp).with_for_update()).one()
            if row.last_evaluated_at is not None and now < utc(row.last_evaluated_at):
                return 0
            group = observe_group(s, rule, now, self.intervals.get(rule.probe, 300.0))
            row.details = {**(row.details or {}), "instances": group.summary()}
            return self._step(s, name, rule, row, group.observation, record, run_id, now)

    def _resolve_gone(self, name: str, rule: RuleConfig, now: datetime) -> int:
        """Resolve the active states of instances that stopped reporting (:mod:`alerts.gone`)."""
        before = now - timedelta(seconds=STALE_INTERVALS
                                 * self.intervals.get(rule.probe, 300.0))
        return gone.resolve(self.store, name, rule, now, before, self._enqueue)

    def _step(
        self, s: Session, name: str, rule: RuleConfig, row: AlertState, obs: Observation,
        record: RunRecord, run_id: int | None, now: datetime,
    ) -> int:
        details = dict(row.details or {})
        row.last_evaluated_at = now
        if obs.matched is None:
            return 0
        keep = rule.for_runs.n if rule.for_runs else 1
        history = [*details.get("history", []), obs.matched][-keep:]
        details["history"] = history
        details["value"] = obs.value
        # With k-of-n an alert is pending while 1..k-1 of the last n runs matched.
        active = sum(history) >= rule.for_runs.k if rule.for_runs else obs.matched
        watched = any(history) if rule.for_runs else obs.matched
        queued = 0
        if active or (watched and row.state != "firing"):
            if row.state not in ACTIVE:
                row.state, row.active_since = "pending", now
                row.fired_at = row.resolved_at = None
                details["notify_seq"] = 0
                details.pop("resolved_reason", None)
            since = utc(row.active_since or now)
            if row.state == "pending" and active and now - since >= timedelta(seconds=rule.for_):
                row.state, row.fired_at = "firing", now
                queued += self._enqueue(s, name, rule, row, details, record, run_id, now)
            elif row.state == "firing" and self._repeat_due(rule, row, now):
                details["notify_seq"] = int(details.get("notify_seq", 0)) + 1
                queued += self._enqueue(s, name, rule, row, details, record, run_id, now)
        elif row.state == "firing":
            row.state, row.resolved_at = "resolved", now
            queued += self._enqueue(s, name, rule, row, details, record, run_id, now)
        elif row.state == "pending":
            row.state, row.active_since = "inactive", None
        row.details = details
        return queued

    def _repeat_due(self, rule: RuleConfig, row: AlertState, now: datetime) -> bool:
        every = rule.repeat_interval or self.config.repeat_interval
        last = row.last_notified_at or row.fired_at or now
        return now - utc(last) >= timedelta(seconds=every)

    # --- notifications -------------------------------------------------------------------
    def _enqueue(
        self, s: Session, name: str, rule: RuleConfig, row: AlertState, details: dict[str, Any],
        record: RunRecord, run_id: int | None, now: datetime,
    ) -> int:
        event = "resolved" if row.state == "resolved" else "firing"
        notification = self.notification(name, rule, row, details, record, run_id, event)
        episode = utc(row.active_since or now).isoformat()
        seq = details.get("notify_seq", 0) if event == "firing" else 0
        row.last_notified_at = now
        queued = 0
        for sink in self.config.sinks_for(rule):
            if event == "resolved" and not self._resolve_needed(s, name, row, sink):
                continue
            key = "\0".join([name, row.fingerprint, episode, event, str(seq), sink])
            queued += insert_ignore(s, AlertNotification, dict(
                dedup_key=hashlib.sha256(key.encode()).hexdigest(), rule=name,
                fingerprint=row.fingerprint, sink=sink, event=event,
                payload=notification.to_payload(), created_at=now, status="pending",
                attempts=0, next_attempt_at=now,
            ), ["dedup_key"])
        return queued

    def _resolve_needed(self, s: Session, name: str, row: AlertState, sink: str) -> bool:
        """Whether ``sink`` must hear that this episode ended.

        A firing notice still waiting (the receiver may be down) is stale now and is
        dropped; a receiver that never heard of the alert is not told it resolved.
        """
        if not self._resolved_wanted.get(sink, True):
            return False
        same = (
            AlertNotification.rule == name, AlertNotification.fingerprint == row.fingerprint,
            AlertNotification.sink == sink, AlertNotification.event == "firing",
        )
        s.execute(update(AlertNotification).where(
            *same, AlertNotification.status == "pending"
        ).values(status="superseded"))
        since = utc(row.active_since) if row.active_since else None
        told = select(func.count()).select_from(AlertNotification).where(
            *same, AlertNotification.status.in_(("sent", "sending")),
        )
        if since is not None:
            told = told.where(AlertNotification.created_at >= since)
        return bool(s.scalar(told))

    def notification(
        self, name: str, rule: RuleConfig, row: AlertState, details: dict[str, Any],
        record: RunRecord, run_id: int | None, event: str,
    ) -> Notification:
        run_details = jsonable(record.details)
        link = self._generator_url(name)
        series = {k: v for k, v in row.labels.items()
                  if k not in ("alertname", "probe", "severity", "target", *rule.labels)}
        context = {
            "rule": name, "probe": rule.probe, "kind": record.kind, "target": record.target,
            "severity": rule.severity, "field": rule.watched, "value": details.get("value"),
            "labels": dict(row.labels), "status": event,
            "since": utc(row.active_since).isoformat() if row.active_since else None,
            "run": {"id": run_id, "status": record.status, "error": record.error,
                    "started_at": utc(record.started_at).isoformat(),
                    "finished_at": utc(record.finished_at).isoformat()},
            "details": run_details,
            "values": _values_by_name(record),
            "instances": details.get("instances"),
            **context_facts(run_details, series, link),
        }
        description = render(rule.description_template, context)
        annotations = {
            "summary": render(rule.summary_template, context),
            # the default's optional last lines may leave a line break; a user's text is kept
            "description": description.strip() if rule.description is None else description,
        }
        if rule.runbook_url:
            annotations["runbook_url"] = rule.runbook_url
        if event == "resolved" and details.get("resolved_reason"):
            annotations["resolved_reason"] = str(details["resolved_reason"])
        value = details.get("value")
        starts_at = iso(row.active_since or record.finished_at)
        assert starts_at is not None  # iso() gives None only for None; finished_at is set
        return Notification(
            status=event, rule=name, fingerprint=row.fingerprint,
            labels={k: str(v) for k, v in row.labels.items()}, annotations=annotations,
            starts_at=starts_at,
            ends_at=iso(row.resolved_at) if event == "resolved" and row.resolved_at else None,
            generator_url=link, run_id=run_id,
            value=value if isinstance(value, int | float | str) else None, details=run_details,
            run_status=record.status, error=record.error,
        )

    def _generator_url(self, name: str) -> str:
        base = self.config.external_url
        return f"{base.rstrip('/')}/alerts?rule={quote(name)}" if base else ""


def _values_by_name(record: RunRecord) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for name, labels, value in record.values:
        out.setdefault(name, []).append({"labels": dict(labels), "value": float(value)})
    return out


