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
from ragmon.probes.drift.methods import classifier, clusters, mmd, trend
from ragmon.probes.drift.methods._base import Method, MethodResult, as_window, check_pair
from ragmon.probes.drift.methods.coverage import coverage

# Modules stay the package's attributes (``methods.mmd`` is the module, not the function).
DRIFT_METHODS: Registry[MethodResult] = Registry("drift method", [
    KindSpec("mmd", mmd.mmd, mmd.MMDParams),
    KindSpec("classifier", classifier.classifier, classifier.ClassifierParams),
    KindSpec("clusters", clusters.clusters, clusters.ClustersParams),
    KindSpec("centroid", trend.centroid, trend.CentroidParams),
    KindSpec("pca_ks", trend.pca_ks, trend.PcaKsParams),
    KindSpec("norms", trend.norms, trend.NormsParams),
])
"""Drift methods by name; config ``methods:`` entries must be keys of this registry."""

__all__ = ["DRIFT_METHODS", "Method", "MethodResult", "as_window", "check_pair", "coverage"]
