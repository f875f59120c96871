"""Calibration conditional on the reference: the null distribution of the deciding method's
statistic *for this reference sample*, simulated from held-out rows of the same traffic.

Why. A permutation p-value is uniform when the reference and the window are both fresh
samples. A pinned reference is one sample, compared with every later window: its own
sampling noise is shared by all of them, so the windows' verdicts are correlated and the
false-alarm rate becomes a property of the reference (measured: 0 to 5.5 times alpha on 10
references of the same traffic). What matters is the distribution of ``T(R, W)`` for *this*
reference ``R`` and a fresh no-drift window ``W``.

How. The reference pool holds the reference sample ``R`` (``n`` rows) and a disjoint
holdout ``H`` of at least :data:`MIN_HOLDOUT_WINDOWS` windows of the same traffic. ``B``
pseudo-windows of ``m`` rows are drawn from ``H`` (each without replacement; they overlap
one another, never ``R``), and the statistic of each against ``R`` is the null. A live
window's calibrated p-value is ``(1 + #{null >= t}) / (B + 1)``: given ``R`` it is
(conservatively) uniform, the windows' verdicts are independent again, and the persistence
rule's budget holds per reference. Pseudo-windows drawn from ``R`` itself would be biased
towards "no drift" (they share rows with what they are compared with), hence the holdout.

For MMD² the null is one matrix product: with ``K_HH`` the kernel of the holdout and ``c``
the holdout rows' kernel sums against ``R``, a pseudo-window's indicator ``a`` gives
``a'K_HH a`` and ``a'c``, and the within-``R`` sum is shared by all. Other methods are
called once per pseudo-window (slower; fewer draws are affordable).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ragmon.monitor.errors import InsufficientData

MIN_HOLDOUT_WINDOWS = 4
"""The holdout must hold at least this many windows' worth of rows: the pseudo-windows
share the holdout's own sampling noise, which shifts the simulated null by about
``sqrt(m / h)`` of its spread; at 4 windows that is half a standard deviation at worst."""
CENTRE_Z = 1.645
"""One-sided 95% bound on the centre of the simulated null (see :func:`_widen`): measured on
MiniLM stdlib windows (10 references x 200 windows, m = 100, n = h = 400), the worst
reference's false-positive rate at alpha 0.05 went from 0.115 (no bound) to 0.055."""
HOLDOUT_CAP = 6000  # rows of the holdout used at most: K_HH stays under 150 MB of float32


@dataclass(frozen=True)
class ReferenceNull:
    """The simulated null of one method's statistic against one reference sample."""

    method: str
    statistics: np.ndarray  # sorted ascending
    window: int
    reference_rows: int
    holdout_rows: int
    params: dict[str, Any] = field(default_factory=dict)

    def p_value(self, statistic: float) -> float:
        """``(1 + #{null >= statistic}) / (B + 1)``: never 0, uniform or conservative."""
        above = self.statistics.size - int(np.searchsorted(self.statistics, statistic, "left"))
        return (above + 1) / (self.statistics.size + 1)

    def threshold(self, alpha: float) -> float:
        """The smallest statistic whose calibrated p-value is at most ``alpha``."""
        b = self.statistics.size
        r = int(np.floor(alpha * (b + 1))) - 1  # null values allowed at or above it
        return float(np.inf) if r < 0 else float(np.nextafter(self.statistics[b - 1 - r],
                                                              np.inf))

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "statistics": [float(s) for s in self.statistics],
                "window": self.window, "reference_rows": self.reference_rows,
                "holdout_rows": self.holdout_rows, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReferenceNull:
        return cls(str(d["method"]), np.sort(np.asarray(d["statistics"], np.float64)),
                   int(d["window"]), int(d["reference_rows"]), int(d["holdout_rows"]),
                   dict(d.get("params", {})))


def holdout_needed(window: int) -> int:
    """Rows of holdout a window of ``window`` rows needs (the documented minimum ratio)."""
    return MIN_HOLDOUT_WINDOWS * window


def check_holdout(holdout_rows: int, window: int, what: str) -> None:
    """Refuse a holdout under :data:`MIN_HOLDOUT_WINDOWS` windows (InsufficientData)."""
    need = holdout_needed(window)
    if holdout_rows < need:
        raise InsufficientData(
            f"{what} holdout (at least {MIN_HOLDOUT_WINDOWS} windows of {window} rows)",
            holdout_rows, need)


def _kernel(x: np.ndarray, y: np.ndarray, gamma: float) -> np.ndarray:
    """RBF kernel in float32, formed as the MMD test forms it."""
    g = np.float32(gamma)
    k: np.ndarray = (x * (2 * g)) @ y.T
    k -= (x * x).sum(1)[:, None] * g
    k -= (y * y).sum(1)[None, :] * g
    np.minimum(k, 0.0, out=k)
    np.exp(k, out=k)
    return k


def _draws(rng: np.random.Generator, h: int, m: int, draws: int) -> np.ndarray:
    """Row numbers of ``draws`` pseudo-windows of ``m`` distinct holdout rows each."""
    return np.argsort(rng.random((draws, h)), axis=1)[:, :m]


def mmd_null(reference: np.ndarray, holdout: np.ndarray, window: int, draws: int,
             gamma: float, seed: int = 0, chunk: int = 256, widen: bool = True) -> np.ndarray:
    """Unbiased MMD² of ``draws`` pseudo-windows of the holdout against ``reference``,
    corrected for the holdout's own sampling (:func:`_widen`) unless ``widen`` is false."""
    ref = np.ascontiguousarray(reference, np.float32)
    hold = np.ascontiguousarray(holdout, np.float32)
    n, h, m = ref.shape[0], hold.shape[0], window
    sxx = float(_kernel(ref, ref, gamma).sum(dtype=np.float64)) - n
    k_hh = _kernel(hold, hold, gamma)
    c = _kernel(hold, ref, gamma).sum(1, dtype=np.float64)
    rng = np.random.default_rng(seed)
    out = np.empty(draws)
    row_means = (k_hh.sum(1, dtype=np.float64) - 1.0) / (h - 1)
    for start in range(0, draws, chunk):
        rows = _draws(rng, h, m, min(chunk, draws - start))
        a = np.zeros((rows.shape[0], h), np.float32)
        np.put_along_axis(a, rows, 1.0, axis=1)
        syy = ((a @ k_hh) * a).sum(1, dtype=np.float64) - m  # diagonal of K is 1
        sxy = a.astype(np.float64) @ c
        out[start:start + rows.shape[0]] = (sxx / (n * (n - 1)) + syy / (m * (m - 1))
                                            - 2.0 * sxy / (n * m))
    return _widen(out, c / n - row_means, m, h) if widen else out


def _widen(null: np.ndarray, witness: np.ndarray, m: int, h: int) -> np.ndarray:
    """Correct a holdout-simulated MMD² null for the holdout being a sample itself.

    Spread: pseudo-windows drawn without replacement from ``h`` rows vary less than fresh
    windows by the finite-population factor ``1 - (m-1)/(h-1)``; the deviations from the
    null's mean are scaled back up by its inverse square root. Centre: the null is centred
    on ``R`` against the holdout's mean embedding instead of the traffic's; that error is
    ``-2 <mu_R - mu_P, mu_H - mu_P>`` with standard error ``2 sd(f) / sqrt(h)``, where
    ``f(x)`` is the reference's witness at holdout row ``x`` (its mean kernel against
    ``R`` minus its mean kernel against the rest of the holdout). The null is shifted up
    by :data:`CENTRE_Z` of those standard errors: an upper confidence bound on the
    reference's own null, conservative where the reference is far from its traffic.
    """
    mean = float(null.mean())
    spread = 1.0 / np.sqrt(max(1.0 - (m - 1) / (h - 1), 1e-6))
    centre = 2.0 * float(witness.std()) / np.sqrt(h)
    widened: np.ndarray = mean + (null - mean) * spread + CENTRE_Z * centre
    return widened


def method_null(build: Callable[..., Any], reference: np.ndarray, holdout: np.ndarray,
                window: int, draws: int, seed: int = 0) -> np.ndarray:
    """Any method's statistic on ``draws`` pseudo-windows (``build(ref, cur, seed=...)``)."""
    rng = np.random.default_rng(seed)
    rows = _draws(rng, holdout.shape[0], window, draws)
    return np.array([float(build(reference, holdout[r], seed=seed + i).statistic)
                     for i, r in enumerate(rows)])


def simulate(method: str, reference: np.ndarray, holdout: np.ndarray, window: int,
             draws: int, seed: int = 0, params: dict[str, Any] | None = None,
             build: Callable[..., Any] | None = None) -> ReferenceNull:
    """The null of ``method`` for ``reference``, from pseudo-windows of ``holdout``.

    Parameters
    ----------
    method : str
        Registry name. ``mmd`` with the exact kernel takes the one-product path; anything
        else calls ``build(reference, window, seed=...)`` once per draw.
    reference, holdout : (n, d) and (h, d) arrays
        Disjoint samples of the same traffic; ``h`` must be at least
        ``MIN_HOLDOUT_WINDOWS * window`` (checked; at most :data:`HOLDOUT_CAP` rows are used).
    window : int
        Rows of the live windows the null is for (the statistic's spread depends on it).
    draws : int
        Number ``B`` of pseudo-windows; calibrated p-values are multiples of 1/(B+1).
    params : dict, optional
        The method's parameters; for ``mmd`` the RBF ``gamma`` (median heuristic on the
        reference when absent), which the live test must then use as well.
    """
    check_holdout(holdout.shape[0], window, f"{method} calibration")
    rng = np.random.default_rng(seed)
    if holdout.shape[0] > HOLDOUT_CAP:
        holdout = holdout[np.sort(rng.choice(holdout.shape[0], HOLDOUT_CAP, replace=False))]
    params = dict(params or {})
    exact = reference.shape[0] + window <= int(params.get("max_exact", 20_000))
    if method == "mmd" and exact:
        from ragmon.probes.drift.methods.mmd import median_gamma

        gamma = float(params.get("gamma") or median_gamma(reference, seed=seed))
        null = mmd_null(reference, holdout, window, draws, gamma, seed)
        used = {"gamma": gamma}
    else:
        if build is None:
            raise ValueError(f"simulating the null of {method!r} needs its function")
        null = method_null(build, reference, holdout, window, draws, seed)
        used = {}
    return ReferenceNull(method, np.sort(null), window, reference.shape[0],
                         holdout.shape[0], used)


def split_pool(rows: int, reference_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split of a pool into the reference sample and the disjoint holdout.

    The reference is drawn across the whole pool, not its first window, so that one
    window's own peculiarities do not become the reference."""
    order = np.random.default_rng(seed).permutation(rows)
    return np.sort(order[:reference_rows]), np.sort(order[reference_rows:])
