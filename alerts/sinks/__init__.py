"""Notification sinks, registered in one :class:`~ragmon.monitor.kinds.Registry` keyed by
the config ``kind``.

To add a kind: a ``Sink`` subclass with its ``Config`` and ``send``, listed here. Error
messages list the valid kinds from this registry.
"""

from __future__ import annotations

from typing import Any

from ragmon.alerts.sinks.alertmanager import AlertmanagerSink
from ragmon.alerts.sinks.base import Notification, Sink
from ragmon.alerts.sinks.email import EmailSink
from ragmon.alerts.sinks.webhook import SlackSink, WebhookSink
from ragmon.monitor.kinds import KindSpec, Registry

SINK_KINDS: Registry[Sink] = Registry("sink", [
    KindSpec(sink.kind, sink, sink.Config)
    for sink in (WebhookSink, SlackSink, AlertmanagerSink, EmailSink)
])


def build_sink(name: str, config: Any, timeout: float = 10.0) -> Sink:
    return SINK_KINDS.build(config.kind, name, config, timeout)


__all__ = ["SINK_KINDS", "Notification", "Sink", "build_sink"]
