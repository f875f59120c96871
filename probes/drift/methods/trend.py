"""Cheap trend metrics for dashboards and reports: centroid distance, PCA-component KS,
norm statistics. Each still returns a verdict with its own calibration."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from ragmon.monitor.config import Strict
from ragmon.probes.drift.methods._base import MethodResult, check_pair


def _cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise 1 - cos between (..., d) arrays."""
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    distance: np.ndarray = 1.0 - num / np.maximum(den, 1e-30)
    return distance


def _resampled_means(x: np.ndarray, size: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``draws`` bootstrap resamples of ``size`` rows, as one (draws, n) @ (n, d)."""
    idx = rng.integers(0, x.shape[0], size=(draws, size))
    counts = np.zeros((draws, x.shape[0]), dtype=np.float32)
    np.add.at(counts, (np.repeat(np.arange(draws), size), idx.ravel()), 1.0)
    means: np.ndarray = (counts @ x) / size
    return means


def centroid(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    alpha: float = 0.05,
    bootstrap: int = 200,
    min_samples: int = 50,
    seed: int = 0,
) -> MethodResult:
    """Cosine distance between the windows' mean vectors, against a ref-vs-ref band.

    Parameters
    ----------
    alpha : float
        The band is the ``1 - alpha`` quantile of the distance between the centroids of two
        bootstrap resamples of the reference, of sizes n and m (the same sizes as the
        windows under test), so it reflects sampling noise at this window size.
    bootstrap : int
        Number B of resample pairs; the p-value is (r + 1) / (B + 1).
    min_samples : int
        Fewer rows in either window raise InsufficientData.
    seed : int
        Seeds the resampling.
    """
    ref, cur = check_pair(reference, current, min_samples)
    rng = np.random.default_rng(seed)
    observed = float(_cosine_distance(ref.mean(0), cur.mean(0)))
    a = _resampled_means(ref, ref.shape[0], bootstrap, rng)
    b = _resampled_means(ref, cur.shape[0], bootstrap, rng)
    band = _cosine_distance(a, b)
    threshold = float(np.quantile(band, 1.0 - alpha))
    p = (int(np.count_nonzero(band >= observed)) + 1) / (bootstrap + 1)
    details = {"band_median": float(np.median(band)), "band_upper": threshold}
    return MethodResult("centroid", observed, p, threshold, observed > threshold, details)


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """BH-adjusted p-values (q-values), in the input order (scipy's implementation)."""
    from scipy import stats  # lazily: the daemon starts without scipy
    return np.asarray(stats.false_discovery_control(np.asarray(p_values, np.float64)))


def pca_ks(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    alpha: float = 0.05,
    components: int = 20,
    min_samples: int = 50,
    seed: int = 0,
) -> MethodResult:
    """Share of the top principal components whose distribution moved.

    Both windows are projected on the first ``components`` principal axes of the pooled
    windows; each axis gets a two-sample Kolmogorov–Smirnov test and the p-values are corrected
    for false discovery rate (Benjamini–Hochberg at ``alpha``). The statistic is the
    share of axes rejected; the window's p-value is the smallest BH q-value (Simes' global
    test), so ``drifted`` (some axis rejected) has level alpha.

    Parameters
    ----------
    alpha : float
        FDR level of the per-axis tests and level of the global test.
    components : int
        Number of principal axes (capped by the dimension and reference size).
    min_samples : int
        Fewer rows in either window raise InsufficientData.
    seed : int
        Seeds scikit-learn's randomized PCA.
    """
    ref, cur = check_pair(reference, current, min_samples)
    k = min(components, ref.shape[1], ref.shape[0] - 1)
    # Axes from the pooled windows: axes fitted on the reference alone are where the
    # reference's own sampling noise is largest, which makes every test reject in high d.
    pooled = np.concatenate([ref, cur])
    from sklearn.decomposition import PCA  # lazily, as in classifier.py

    pca = PCA(n_components=k, svd_solver="randomized", random_state=seed).fit(pooled)
    # Asymptotic p-values: the exact distribution is far slower and no better at n >= 50.
    from scipy import stats  # lazily: the daemon starts without scipy
    p = stats.ks_2samp(pca.transform(ref), pca.transform(cur), axis=0, method="asymp").pvalue
    q = benjamini_hochberg(np.atleast_1d(p))
    rejected = q <= alpha
    explained = pca.explained_variance_ratio_
    details = {
        "components": k,
        "drifted_components": np.flatnonzero(rejected).tolist(),
        "explained_variance": [round(float(e), 4) for e in explained],
    }
    share = float(rejected.mean())
    return MethodResult("pca_ks", share, float(q.min()), None, bool(rejected.any()), details)


def norms(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    alpha: float = 0.05,
    min_samples: int = 50,
    seed: int = 0,
) -> MethodResult:
    """Distribution of vector norms: KS test, means, quantiles, zero and duplicate shares.

    Normalised embeddings all have norm 1; a change of the norm distribution means the
    pipeline's normalisation changed, or vectors are being written un-normalised.

    Parameters
    ----------
    alpha : float
        Level of the KS test on the norms (statistic = KS distance).
    min_samples : int
        Fewer rows in either window raise InsufficientData.
    seed : int
        Unused; accepted for a uniform signature.
    """
    ref, cur = check_pair(reference, current, min_samples)
    rn = np.linalg.norm(ref, axis=1)
    cn = np.linalg.norm(cur, axis=1)
    if np.ptp(np.concatenate([rn, cn])) <= 1e-6:
        ks, p = 0.0, 1.0
    else:
        from scipy import stats  # lazily: the daemon starts without scipy
        test = stats.ks_2samp(rn, cn, method="asymp")
        ks, p = float(test.statistic), float(test.pvalue)

    def summary(x: np.ndarray, v: np.ndarray) -> dict[str, float]:
        q = np.quantile(x, [0.01, 0.5, 0.99])
        dupes = 1.0 - np.unique(v, axis=0).shape[0] / v.shape[0]
        return {
            "mean": float(x.mean()), "std": float(x.std()), "p01": float(q[0]),
            "p50": float(q[1]), "p99": float(q[2]),
            "zero_share": float(np.mean(x == 0.0)), "duplicate_share": float(dupes),
        }

    details = {"reference": summary(rn, ref), "current": summary(cn, cur)}
    return MethodResult("norms", ks, p, None, p <= alpha, details)


class CentroidParams(Strict):
    """Parameters of ``centroid`` a config may set (``method_params: {centroid: ...}``)."""

    bootstrap: int = Field(default=200, ge=1)
    """Reference-vs-reference bootstrap resamples of the band."""


class PcaKsParams(Strict):
    """Parameters of ``pca_ks`` a config may set (``method_params: {pca_ks: ...}``)."""

    components: int = Field(default=20, ge=1)
    """Principal components tested (each with KS, Benjamini-Hochberg corrected)."""


class NormsParams(Strict):
    """``norms`` has no parameters of its own."""
