"""Embedding drift: query traffic, index contents and canaries against a stored reference.

``methods`` holds the statistics (pure functions in a registry), ``alarms`` the
calibration and persistence rules, ``probe`` the probe kind, ``ingest`` the JSONL tail and
HTTP endpoint, ``state`` what is kept in SQL, ``cli`` ``ragmon baseline capture``.
"""

from __future__ import annotations

from ragmon.probes.drift.probe import DriftProbe

__all__ = ["DriftProbe"]
