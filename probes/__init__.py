"""Probe kinds, registered in one mapping keyed by the config ``kind``.

To add a kind: write a module with a ``Probe`` subclass (its ``Config``, ``METRICS``, ``run``)
and add it here. Error messages list valid kinds from this mapping.
"""

from __future__ import annotations

from ragmon.probes.base import Deadline, MetricSpec, Probe, ProbeResult
from ragmon.probes.canary import CanaryProbe
from ragmon.probes.drift import DriftProbe
from ragmon.probes.recall.probe import RecallProbe

PROBE_KINDS: dict[str, type[Probe]] = {
    CanaryProbe.kind: CanaryProbe,
    DriftProbe.kind: DriftProbe,
    RecallProbe.kind: RecallProbe,
}

__all__ = ["PROBE_KINDS", "Deadline", "MetricSpec", "Probe", "ProbeResult"]
