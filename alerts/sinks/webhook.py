"""HTTP sinks: a generic JSON webhook (optionally HMAC-signed) and Slack-compatible hooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any, Literal

from pydantic import Field

from ragmon.alerts.sinks.base import Notification, Sink
from ragmon.monitor.config import Duration, KindConfig, Secret

SIGNATURE_HEADER = "X-Ragmon-Signature"
TIMESTAMP_HEADER = "X-Ragmon-Timestamp"


def webhook_body(sink_name: str, n: Notification) -> dict[str, Any]:
    """The generic webhook's JSON body (documented in docs/alerts.md)."""
    return {
        "version": "1",
        "receiver": sink_name,
        "status": n.status,
        "alert": {
            "name": n.rule,
            "fingerprint": n.fingerprint,
            "status": n.status,
            "severity": n.severity,
            "labels": n.labels,
            "annotations": n.annotations,
            "startsAt": n.starts_at,
            "endsAt": n.ends_at,
            "generatorURL": n.generator_url,
            "value": n.value,
        },
        "run": {"id": n.run_id, "status": n.run_status, "error": n.error},
        "details": n.details,
    }


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of "<timestamp>." + body>``, keyed by the shared secret."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


class WebhookConfig(KindConfig):
    """A JSON POST to any HTTP endpoint (body documented in docs/alerts.md)."""

    kind: Literal["webhook"]
    url: Secret = Field(description="Where to POST; `https://user:password@host/` is basic auth.")
    hmac_secret: Secret | None = Field(default=None, description=(
        "Sign each body: `X-Ragmon-Signature: sha256=HMAC(secret, timestamp.body)`."))
    headers: dict[str, Secret] = Field(default_factory=dict, description="Extra headers.")
    send_resolved: bool = Field(default=True, description="Also notify when an alert resolves.")
    timeout: Duration | None = Field(default=None, description=(
        "Time limit of one request, start to end however slowly the receiver answers "
        "(default: `alerts.delivery.timeout`; at most half of `alerts.delivery.lease` is "
        "used)."))


class WebhookSink(Sink):
    kind = "webhook"
    Config = WebhookConfig

    def send(self, notification: Notification, deadline: float | None = None) -> None:
        cfg: WebhookConfig = self.config
        body = json.dumps(webhook_body(self.name, notification), sort_keys=True).encode()
        headers = {k: v.get_secret_value() for k, v in cfg.headers.items()}
        if cfg.hmac_secret is not None:
            timestamp = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = sign(cfg.hmac_secret.get_secret_value(), timestamp, body)
        self.post_json(cfg.url.get_secret_value(), body, headers, deadline)


class SlackConfig(KindConfig):
    """A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat)."""

    kind: Literal["slack"]
    url: Secret = Field(description="The incoming-webhook URL (its path is the secret).")
    channel: str | None = Field(default=None, description="Override the hook's channel.")
    username: str = Field(default="ragmon", description="Name shown as the sender.")
    icon_emoji: str | None = Field(default=None, description="Like `:rotating_light:`.")
    send_resolved: bool = Field(default=True, description="Also notify when an alert resolves.")
    timeout: Duration | None = Field(default=None, description=(
        "Time limit of one request, start to end however slowly the receiver answers "
        "(default: `alerts.delivery.timeout`; at most half of `alerts.delivery.lease` is "
        "used)."))


_COLORS = {"critical": "#d63232", "warning": "#e8a317", "info": "#439fe0"}


def slack_body(n: Notification, cfg: SlackConfig) -> dict[str, Any]:
    """An incoming-webhook message (Slack, Mattermost and Rocket.Chat read this shape)."""
    resolved = n.status == "resolved"
    head = f"[{'RESOLVED' if resolved else 'FIRING'}] {n.rule}: {n.summary}"
    fields = [
        {"title": key, "value": value, "short": True}
        for key, value in sorted(n.labels.items()) if key != "alertname"
    ]
    if n.value is not None:
        value = n.value if isinstance(n.value, str) else f"{n.value:.6g}"
        fields.append({"title": "value", "value": value, "short": True})
    body: dict[str, Any] = {
        "text": head,
        "username": cfg.username,
        "attachments": [{
            "fallback": head,
            "color": "#2eb67d" if resolved else _COLORS.get(n.severity, "#e8a317"),
            "title": head,
            "text": n.annotations.get("description", ""),
            "fields": fields,
            "footer": "ragmon",
        }],
    }
    if n.generator_url:
        body["attachments"][0]["title_link"] = n.generator_url
    if cfg.channel:
        body["channel"] = cfg.channel
    if cfg.icon_emoji:
        body["icon_emoji"] = cfg.icon_emoji
    return body


class SlackSink(Sink):
    kind = "slack"
    Config = SlackConfig

    def send(self, notification: Notification, deadline: float | None = None) -> None:
        cfg: SlackConfig = self.config
        self.post_json(cfg.url.get_secret_value(), slack_body(notification, cfg),
                       deadline=deadline)
