"""MMD² with an RBF kernel and a permutation test computed as one matrix product.

For an indicator vector ``a`` of the reference rows in the pooled sample ``Z`` (N = n + m
rows) and the kernel matrix ``K`` of ``Z``, the unbiased MMD² needs only ``a'Ka`` and
``a'K1``. Stacking P permuted indicators into a (P, N) matrix ``A``, every permutation's
statistic comes from ``A @ K`` — computed block by block of rows of ``K`` (on and above
the diagonal only: K is symmetric), so memory stays at O(P·N + B·N) and no (N, N) matrix or
per-permutation kernel copy is ever held.

Above ``max_exact`` pooled rows the kernel is replaced by random Fourier features
(Rahimi & Recht 2007): ``k(x, y) ≈ φ(x)·φ(y)`` with D features, and ``A @ K`` becomes
``A @ Φ`` (P, D). The permutation test stays exact for that (random) kernel, so its level
is still alpha; only the statistic approximates the exact one (see docs/drift.md).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from ragmon.monitor.config import Strict
from ragmon.probes.drift.methods._base import (
    MethodResult,
    check_pair,
    permutation_p_value,
)

BLOCK_BYTES = 64 * 1024 * 1024  # one block of kernel rows, float32


def median_gamma(reference: np.ndarray, max_points: int = 1000, seed: int = 0) -> float:
    """RBF precision ``gamma`` (``k = exp(-gamma·|x-y|²)``) from the median heuristic.

    ``gamma = 1 / median(|x_i - x_j|²)`` over distinct pairs of (up to ``max_points``)
    reference rows; the same choice as alibi-detect's ``sigma_median`` with
    ``k = exp(-|x-y|² / (2σ²))``. Taken from the reference only, so that it does not
    depend on the window under test.
    """
    rng = np.random.default_rng(seed)
    x = reference
    if x.shape[0] > max_points:
        x = x[rng.choice(x.shape[0], max_points, replace=False)]
    d2 = _sq_dists(x, x)
    iu = np.triu_indices(x.shape[0], k=1)
    med = float(np.median(d2[iu]))
    return 1.0 / med if med > 0 else 1.0


def _sq_dists(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    d2: np.ndarray = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
    np.maximum(d2, 0.0, out=d2)
    return d2


def _mmd2_from_sums(
    sxx: np.ndarray, rx: np.ndarray, total: float, n: int, m: int
) -> np.ndarray:
    """Unbiased MMD² from a'Ka, a'K1 and 1'K1 (diagonal of K is 1)."""
    syy = total - 2.0 * rx + sxx
    sxy = rx - sxx
    mmd2: np.ndarray = (sxx - n) / (n * (n - 1)) + (syy - m) / (m * (m - 1)) - 2.0 * sxy / (n * m)
    return mmd2


def _exact_sums(z: np.ndarray, a: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray, float]:
    """``a'Ka`` and ``a'K1`` for every row of ``a``, and ``1'K1``, without holding K.

    K is symmetric, so only the blocks on and above the diagonal are computed: a block B of
    rows against every column from its own first row on. ``a'Ka`` sums ``a_B' K_BC a_C``
    over those blocks, counting the off-diagonal part twice, so each kernel entry is
    computed once and multiplied by the permutation matrix once. The exponent is formed in
    place as ``2γ x·y - γ|x|² - γ|y|²``.
    """
    n_rows = z.shape[0]
    block = max(1, BLOCK_BYTES // (4 * n_rows))
    g = np.float32(gamma)
    scaled = z * (2 * g)
    sq = (z * z).sum(1) * g
    sxx = np.zeros(a.shape[0], dtype=np.float64)
    rowsum = np.zeros(n_rows, dtype=np.float64)
    for start in range(0, n_rows, block):
        stop = min(start + block, n_rows)
        width = stop - start
        kb = scaled[start:stop] @ z[start:].T
        kb -= sq[start:stop, None]
        kb -= sq[None, start:]
        np.minimum(kb, 0.0, out=kb)
        np.exp(kb, out=kb)
        weighted = a[:, start:stop] @ kb
        weighted *= a[:, start:]
        sxx += weighted[:, :width].sum(1, dtype=np.float64)
        sxx += 2.0 * weighted[:, width:].sum(1, dtype=np.float64)
        rowsum[start:] += kb.sum(0, dtype=np.float64)
        rowsum[start:stop] += kb[:, width:].sum(1, dtype=np.float64)
    rx = a.astype(np.float64) @ rowsum
    return sxx, rx, float(rowsum.sum())


def _rff_sums(
    z: np.ndarray, a: np.ndarray, gamma: float, features: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, float]:
    half = max(1, features // 2)
    w = rng.normal(0.0, np.sqrt(2.0 * gamma), size=(z.shape[1], half)).astype(np.float32)
    scale = np.float32(1.0 / np.sqrt(half))
    block = max(1, BLOCK_BYTES // (4 * 2 * half))
    az = np.zeros((a.shape[0], 2 * half), dtype=np.float64)
    colsum = np.zeros(2 * half, dtype=np.float64)
    for start in range(0, z.shape[0], block):
        proj = z[start : start + block] @ w
        phi = np.concatenate([np.cos(proj), np.sin(proj)], axis=1) * scale
        az += a[:, start : start + block] @ phi
        colsum += phi.sum(0, dtype=np.float64)
    return (az * az).sum(1), az @ colsum, float(colsum @ colsum)


def mmd(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    alpha: float = 0.05,
    permutations: int = 200,
    gamma: float | None = None,
    max_exact: int = 20_000,
    rff_features: int = 16384,
    min_samples: int = 50,
    seed: int = 0,
) -> MethodResult:
    """Unbiased MMD² between two windows with a permutation p-value.

    Parameters
    ----------
    reference, current : (n, d) and (m, d) arrays
        The two windows (float32 is used internally).
    alpha : float
        Significance level of this window's test: ``drifted = p_value <= alpha``. Use the
        per-window alpha of the alarm calibration, not a bare 0.05, in production.
    permutations : int
        Number P of random re-splits of the pooled sample. The p-value is
        ``(r + 1) / (P + 1)`` (r = permuted statistics >= observed), never 0; its smallest
        value is 1/(P+1), so P must exceed 1/alpha by a good margin.
    gamma : float, optional
        RBF precision, ``k(x, y) = exp(-gamma·|x - y|²)``. Default: median heuristic on the
        reference (:func:`median_gamma`).
    max_exact : int
        Largest pooled size n + m computed with the exact kernel (the default: 10,000 rows
        per side); above it, random Fourier features approximate the kernel (time O(N·d·D)
        instead of O(N²·d)). ``details["kernel"]`` says which one ran.
    rff_features : int
        Number D of random Fourier features (cos/sin pairs) in the approximate path.
    min_samples : int
        Fewer rows in either window raise InsufficientData.
    seed : int
        Seeds the permutations, the bandwidth subsample and the Fourier features.
    """
    ref, cur = check_pair(reference, current, min_samples)
    n, m = ref.shape[0], cur.shape[0]
    rng = np.random.default_rng(seed)
    g = float(gamma) if gamma is not None else median_gamma(ref, seed=seed)
    z = np.concatenate([ref, cur])
    a0 = np.concatenate([np.ones(n, np.float32), np.zeros(m, np.float32)])
    a = np.concatenate([a0[None, :], rng.permuted(np.tile(a0, (permutations, 1)), axis=1)])
    approximate = z.shape[0] > max_exact
    if approximate:
        sxx, rx, total = _rff_sums(z, a, g, rff_features, rng)
    else:
        sxx, rx, total = _exact_sums(z, a, g)
    stats = _mmd2_from_sums(sxx, rx, total, n, m)
    observed, null = float(stats[0]), stats[1:]
    p = permutation_p_value(observed, null)
    details = {
        "gamma": g, "n_reference": n, "n_current": m, "permutations": permutations,
        "kernel": "rff" if approximate else "exact", "max_exact": max_exact,
        "null_mean": float(null.mean()),
        "null_std": float(null.std()),
    }
    if approximate:
        details["rff_features"] = 2 * max(1, rff_features // 2)
    return MethodResult("mmd", observed, p, None, p <= alpha, details)


def witness(
    points: np.ndarray, reference: np.ndarray, current: np.ndarray, gamma: float
) -> np.ndarray:
    """MMD witness at ``points``: mean kernel to ``current`` minus mean kernel to ``reference``.

    Positive where the current window is denser than the reference: the points that make
    the windows differ. Used to pick the example texts that explain a cluster's growth.
    """
    out = np.zeros(points.shape[0], dtype=np.float64)
    for sign, window in ((1.0, current), (-1.0, reference)):
        k = np.exp(-gamma * _sq_dists(points, window))
        out += sign * k.mean(1)
    return out


class MMDParams(Strict):
    """Parameters of ``mmd`` a config may set (``method_params: {mmd: ...}``)."""

    permutations: int = Field(default=500, ge=1)
    """Permutations of the test; raised to resolve the calibrated alpha when lower."""
    gamma: float | None = Field(default=None, gt=0.0)
    """RBF precision; default from the median heuristic on the reference."""
    max_exact: int = Field(default=20_000, ge=2)
    """Pooled rows above which random Fourier features replace the exact kernel (the default
    keeps it exact up to 10,000 rows per side); the kernel used is printed and exported as
    `ragmon_drift_kernel_info`."""
    rff_features: int = Field(default=16384, ge=16)
    """Random Fourier features of the approximate path."""
