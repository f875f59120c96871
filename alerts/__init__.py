"""Alerting: Prometheus rules shipped in alerts/rules/, and in-daemon rules and sinks."""
