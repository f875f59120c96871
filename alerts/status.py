"""The current alert state, for ``ragmon alerts list`` and the daemon's ``/alerts`` page
(where notifications' ``generatorURL`` points)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from ragmon.alerts.delivery import Redactor
from ragmon.monitor.errors import StoreError
from ragmon.monitor.store.models import AlertState
from ragmon.monitor.store.tables_alerts import AlertNotification
from sqlalchemy import func, select


def alert_rows(config: Any, store: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Alert instances (configured rules without state show as inactive) and queue counts."""
    with store.session() as s:
        states = s.scalars(select(AlertState).order_by(AlertState.rule, AlertState.id)).all()
        queue = s.execute(
            select(AlertNotification.sink, AlertNotification.status, func.count())
            .group_by(AlertNotification.sink, AlertNotification.status)
        ).all()
        recent_errors = s.execute(
            select(AlertNotification.sink, AlertNotification.last_error)
            .where(AlertNotification.last_error.is_not(None))
            .order_by(AlertNotification.id.desc()).limit(1000)
        ).all()
    errors = dict(reversed(recent_errors))  # the newest error of each sink wins
    rows = [{
        "rule": st.rule,
        "state": st.state,
        "labels": {k: v for k, v in sorted(st.labels.items()) if k != "alertname"},
        "since": _iso(st.active_since if st.state != "resolved" else st.resolved_at),
        "last_notified": _iso(st.last_notified_at),
        "value": (st.details or {}).get("value"),
        "configured": st.rule in config.alerts.rules,
    } for st in states]
    seen = {r["rule"] for r in rows}
    rows += [{"rule": name, "state": "inactive", "labels": {"probe": rule.probe,
              "severity": rule.severity}, "since": None, "last_notified": None, "value": None,
              "configured": True}
             for name, rule in sorted(config.alerts.rules.items()) if name not in seen]
    counts: Counter[tuple[str, str]] = Counter({(sink, st): n for sink, st, n in queue})
    sinks = sorted(set(config.alerts.sinks) | {sink for sink, _ in counts})
    redact = Redactor(config.alerts.secrets())
    queue_rows = [{
        "sink": sink,
        "kind": config.alerts.sinks[sink].kind if sink in config.alerts.sinks else "(removed)",
        **{st: counts[(sink, st)] for st in ("pending", "sending", "sent", "failed")},
        "last_error": redact(errors[sink]) if errors.get(sink) else None,
    } for sink in sinks]
    return rows, queue_rows


def status_app(config: Any, store: Any) -> Callable[..., Iterable[bytes]]:
    """A WSGI app answering ``GET /alerts[?rule=NAME]`` with the state as JSON."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        rule = parse_qs(environ.get("QUERY_STRING", "")).get("rule", [None])[0]
        try:
            rows, sinks = alert_rows(config, store)
        except StoreError as exc:
            return _json(start_response, "503 Service Unavailable", {"error": str(exc)})
        if rule is not None:
            rows = [r for r in rows if r["rule"] == rule]
        return _json(start_response, "200 OK", {"alerts": rows, "sinks": sinks})

    return app


def _json(start_response: Callable[..., Any], status: str, data: Any) -> Iterable[bytes]:
    body = json.dumps(data, indent=2, default=str).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]


def _iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    return ts.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
