"""The current alert state, for ``ragmon alerts list`` and the daemon's ``/alerts`` page
(where notifications' ``generatorURL`` points)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from sqlalchemy import func, select

from ragmon.alerts.config import alerts_section
from ragmon.alerts.tables import AlertNotification, AlertState
from ragmon.monitor.common import Redactor, iso
from ragmon.monitor.errors import StoreError


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
    section = alerts_section(config)
    rows = [{
        "rule": st.rule,
        "state": st.state,
        "labels": {k: v for k, v in sorted(st.labels.items()) if k != "alertname"},
        "since": iso(st.active_since if st.state != "resolved" else st.resolved_at),
        "last_notified": iso(st.last_notified_at),
        "value": (st.details or {}).get("value"),
        "configured": st.rule in section.rules,
    } for st in states]
    seen = {r["rule"] for r in rows}
    rows += [{"rule": name, "state": "inactive", "labels": {"probe": rule.probe,
              "severity": rule.severity}, "since": None, "last_notified": None, "value": None,
              "configured": True}
             for name, rule in sorted(section.rules.items()) if name not in seen]
    counts: Counter[tuple[str, str]] = Counter({(sink, st): n for sink, st, n in queue})
    sinks = sorted(set(section.sinks) | {sink for sink, _ in counts})
    redact = Redactor(section.secrets())
    queue_rows = [{
        "sink": sink,
        "kind": section.sinks[sink].kind if sink in section.sinks else "(removed)",
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


