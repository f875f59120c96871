"""The typed result every drift method returns, the registry, and input validation.

A method is a pure function ``f(reference, current, **params) -> MethodResult`` over two
float arrays of shape (n, d) and (m, d). It never reads the store or the config; the probe
passes parameters from the config by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ragmon.monitor.errors import DriftError, InsufficientData


@dataclass(frozen=True)
class MethodResult:
    """What a drift method found.

    Attributes
    ----------
    method : str
        Registry name of the method (``"mmd"``, ``"classifier"``, ...).
    statistic : float
        The method's statistic (MMD², AUC, cosine distance, JS divergence, share, ...).
    p_value : float or None
        Probability of a statistic at least this extreme when both windows come from the
        same distribution; ``None`` for methods judged against a threshold only.
    threshold : float or None
        The value ``statistic`` is compared with when there is no p-value (for example the
        upper end of a bootstrap band), or the effect-size floor for the classifier.
    drifted : bool
        This window differs from the reference at the significance level the method was
        called with (``alpha``). One window that differs is not yet an alarm.
    details : dict
        JSON-serialisable evidence (bandwidth, band, per-cluster shares, ...).
    """

    method: str
    statistic: float
    p_value: float | None
    threshold: float | None
    drifted: bool
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method, "statistic": self.statistic, "p_value": self.p_value,
            "threshold": self.threshold, "drifted": self.drifted, "details": self.details,
        }


Method = Callable[..., MethodResult]
"""``f(reference, current, *, alpha, min_samples, seed, **params) -> MethodResult``."""


def as_window(vectors: Any, what: str, min_samples: int = 2) -> np.ndarray:
    """Validate one window: 2-D, finite, at least ``min_samples`` rows; returns float32.

    Raises
    ------
    InsufficientData
        Fewer rows than ``min_samples``.
    DriftError
        Not 2-D, or some vectors contain NaN or Inf (their row numbers are named).
    """
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim != 2:
        raise DriftError(f"{what} must be a 2-D array of vectors, got shape {arr.shape}")
    if arr.shape[0] < min_samples:
        raise InsufficientData(what, int(arr.shape[0]), int(min_samples))
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DriftError(
            f"{what}: {rows.size} of {arr.shape[0]} vectors contain NaN or Inf "
            f"(rows {rows[:10].tolist()}); drop or fix them before comparing"
        )
    return np.ascontiguousarray(arr)


def check_pair(
    reference: Any, current: Any, min_samples: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Validate both windows and that they share one dimension."""
    ref = as_window(reference, "reference window", min_samples)
    cur = as_window(current, "current window", min_samples)
    if ref.shape[1] != cur.shape[1]:
        raise DriftError(
            f"reference vectors have dimension {ref.shape[1]} but current vectors have "
            f"dimension {cur.shape[1]}; they come from different embedding models"
        )
    return ref, cur


def permutation_p_value(observed: float, null: np.ndarray) -> float:
    """``(r + 1) / (P + 1)`` with r the null statistics >= observed: never 0, exact level."""
    r = int(np.count_nonzero(null >= observed))
    return (r + 1) / (null.size + 1)
