"""Notification sinks, registered in one mapping keyed by the config ``kind``.

To add a kind: a ``Sink`` subclass with its ``Config`` and ``send``, added here. Error
messages list the valid kinds from this mapping.
"""

from __future__ import annotations

from typing import Any

from ragmon.alerts.sinks.alertmanager import AlertmanagerSink
from ragmon.alerts.sinks.base import Notification, Sink
from ragmon.alerts.sinks.email import EmailSink
from ragmon.alerts.sinks.webhook import SlackSink, WebhookSink

SINK_KINDS: dict[str, type[Sink]] = {
    sink.kind: sink for sink in (WebhookSink, SlackSink, AlertmanagerSink, EmailSink)
}


def build_sink(name: str, config: Any, timeout: float = 10.0) -> Sink:
    return SINK_KINDS[config.kind](name, config, timeout)


__all__ = ["SINK_KINDS", "Notification", "Sink", "build_sink"]
