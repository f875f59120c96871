"""Coverage: are queries drifting away from everything the index holds?

Each query's distance to its nearest indexed vector is the question "does the knowledge
base have anything close to this?". The reference window's distances set the bar (their
``quantile``, 95th percentile by default); the share of current queries beyond it is the
knowledge-gap share. Under no change it is about ``1 - quantile``.
"""

from __future__ import annotations

import numpy as np

from ragmon.monitor.errors import DriftError, InsufficientData
from ragmon.probes.drift.methods._base import MethodResult


def _distances(values: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if not np.isfinite(arr).all():
        raise DriftError(f"{what}: nearest-neighbour distances contain NaN or Inf")
    return arr


def coverage(
    reference_nn: np.ndarray,
    current_nn: np.ndarray,
    *,
    alpha: float = 0.05,
    quantile: float = 0.95,
    min_samples: int = 20,
) -> MethodResult:
    """Share of current queries farther from the index than the reference's quantile.

    Parameters
    ----------
    reference_nn, current_nn : 1-D arrays
        Distance of each reference / current query to its nearest indexed vector
        (cosine distance ``1 - cos`` for cosine and inner-product indexes).
    alpha : float
        Level of the one-sided binomial test of the gap share against ``1 - quantile``.
        The reference quantile is itself estimated, so with a small reference the test is
        slightly liberal; at a few hundred reference queries the error is negligible.
    quantile : float
        The reference quantile that separates "covered" from "gap".
    min_samples : int
        Fewer queries in either window raise InsufficientData.
    """
    ref = _distances(reference_nn, "reference window")
    cur = _distances(current_nn, "current window")
    for what, arr in (("reference window", ref), ("current window", cur)):
        if arr.size < min_samples:
            raise InsufficientData(what, int(arr.size), int(min_samples))
    bar = float(np.quantile(ref, quantile))
    gaps = int(np.count_nonzero(cur > bar))
    share = gaps / cur.size
    from scipy import stats  # lazily: the daemon starts without scipy
    p = float(stats.binomtest(gaps, cur.size, 1.0 - quantile, alternative="greater").pvalue)
    details = {
        "bar": bar, "quantile": quantile, "gaps": gaps,
        "reference": _summary(ref), "current": _summary(cur),
    }
    return MethodResult("coverage", share, p, 1.0 - quantile, p <= alpha, details)


def _summary(x: np.ndarray) -> dict[str, float]:
    q = np.quantile(x, [0.5, 0.9, 0.95, 0.99])
    return {"p50": float(q[0]), "p90": float(q[1]), "p95": float(q[2]), "p99": float(q[3])}
