"""Drift methods: pure functions over two windows of vectors, in one registry.

Each entry of :data:`DRIFT_METHODS` is a :class:`~ragmon.monitor.kinds.KindSpec`: the
function, and the typed model of the parameters a config may set for it
(``method_params: {mmd: {permutations: 1000}}``), so ``ragmon check-config`` rejects an
unknown or mistyped parameter with its key path. The probe supplies ``alpha``, ``seed`` and
``min_samples`` itself. To add a method: write the function and its ``Params`` model in a
module here, and list it below.
"""

from __future__ import annotations

from ragmon.monitor.kinds import KindSpec, Registry
from ragmon.probes.drift.methods._base import Method, MethodResult, as_window, check_pair
from ragmon.probes.drift.methods.classifier import ClassifierParams, classifier
from ragmon.probes.drift.methods.clusters import ClustersParams, clusters
from ragmon.probes.drift.methods.coverage import coverage
from ragmon.probes.drift.methods.mmd import MMDParams, mmd
from ragmon.probes.drift.methods.trend import (
    CentroidParams,
    NormsParams,
    PcaKsParams,
    centroid,
    norms,
    pca_ks,
)

DRIFT_METHODS: Registry[MethodResult] = Registry("drift method", [
    KindSpec("mmd", mmd, MMDParams),
    KindSpec("classifier", classifier, ClassifierParams),
    KindSpec("clusters", clusters, ClustersParams),
    KindSpec("centroid", centroid, CentroidParams),
    KindSpec("pca_ks", pca_ks, PcaKsParams),
    KindSpec("norms", norms, NormsParams),
])
"""Drift methods by name; config ``methods:`` entries must be keys of this registry."""

__all__ = ["DRIFT_METHODS", "Method", "MethodResult", "as_window", "check_pair", "coverage"]
