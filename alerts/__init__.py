"""Alerting: Prometheus rules shipped in alerts/rules/, and rules evaluated in the daemon."""
