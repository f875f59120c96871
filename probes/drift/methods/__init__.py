"""Drift methods: pure functions over two windows of vectors, registered by name.

Importing this package registers every method in :data:`METHODS`; the probe's config
``methods:`` keys are checked against it.
"""

from __future__ import annotations

from ragmon.probes.drift.methods import classifier, clusters, mmd, trend  # noqa: F401  (registers)
from ragmon.probes.drift.methods._base import METHODS, MethodResult, as_window, check_pair, register
from ragmon.probes.drift.methods.coverage import coverage

__all__ = ["METHODS", "MethodResult", "as_window", "check_pair", "coverage", "register"]
