"""Alertmanager API v2: ``POST /api/v2/alerts`` with labels, annotations, startsAt, endsAt
and generatorURL, as Prometheus sends them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import Field

from ragmon.alerts.explain import annotation_facts
from ragmon.alerts.sinks.base import Notification, Sink
from ragmon.monitor.common import iso
from ragmon.monitor.config import Duration, KindConfig, Secret


class AlertmanagerConfig(KindConfig):
    """Alertmanager's API v2 (``POST /api/v2/alerts``)."""

    kind: Literal["alertmanager"]
    url: Secret = Field(description="Alertmanager's base URL, like `http://alertmanager:9093`.")
    bearer_token: Secret | None = Field(default=None,
                                        description="Sent as `Authorization: Bearer`.")
    # A firing alert is posted with endsAt = now + ttl: if ragmon stops refreshing it (the
    # repeat interval re-posts it), Alertmanager resolves it by itself after the ttl.
    ttl: Duration = Field(default=24 * 3600.0, description=(
        "A firing alert ends by itself this long after it was last posted; keep it longer "
        "than the repeat interval."))
    timeout: Duration | None = Field(default=None, description=(
        "Time limit of one request, start to end however slowly the receiver answers "
        "(default: `alerts.delivery.timeout`; at most half of `alerts.delivery.lease` is "
        "used)."))


def alertmanager_alert(n: Notification, ttl: float) -> dict[str, Any]:
    labels = {k: str(v) for k, v in n.labels.items()}
    ends_at = n.ends_at or iso(datetime.now(UTC) + timedelta(seconds=ttl))
    alert = {
        "labels": labels,
        # The run's facts one by one (value, verdict, reasons, regressed queries, error),
        # beside the rendered summary and description, for Alertmanager's own templates.
        "annotations": {**annotation_facts(n), **{k: str(v) for k, v in n.annotations.items()}},
        "startsAt": n.starts_at,
        "endsAt": ends_at,
    }
    if n.generator_url:
        alert["generatorURL"] = n.generator_url
    return alert


class AlertmanagerSink(Sink):
    kind = "alertmanager"
    Config = AlertmanagerConfig

    @property
    def send_resolved(self) -> bool:
        return True  # Alertmanager must hear the resolve, or it waits for endsAt

    def send(self, notification: Notification, deadline: float | None = None) -> None:
        cfg: AlertmanagerConfig = self.config
        headers = {}
        if cfg.bearer_token is not None:
            headers["Authorization"] = f"Bearer {cfg.bearer_token.get_secret_value()}"
        url = cfg.url.get_secret_value().rstrip("/") + "/api/v2/alerts"
        self.post_json(url, [alertmanager_alert(notification, cfg.ttl)], headers, deadline)
