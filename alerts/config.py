"""The ``alerts:`` section of the config (rules and sinks are added by the alerting feature)."""

from __future__ import annotations

from monitor.config._types import Strict


class AlertsConfig(Strict):
    """In-daemon alert rules and the sinks that deliver them."""
