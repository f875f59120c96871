"""Domain classifier: can a logistic regression tell the current window from the reference?

Cross-fitted: the pooled windows are split into stratified folds; a model fitted on the
other folds scores each held-out fold, and the AUC reported is the mean held-out AUC.

The p-value needs care. The held-out AUC of *one* fold is a Mann–Whitney U statistic with
a known null distribution, because the scores of a held-out fold do not depend on that
fold's labels. Combining folds (Stouffer's ``Σz/√K``) is *not* valid: each fold's labels
train the other folds' models, so the fold z-scores are positively correlated (about 0.18
at K = 5 on MiniLM windows of 500, giving a combined variance of 1.8 and a false-positive
rate of 0.10 at alpha 0.05). The default null therefore tests the first fold only: exact,
and with two folds it uses half of the pooled rows. ``null="permutation"`` tests the
cross-fitted mean AUC against label shuffles instead (exact too, P times slower).

Features are made blind to float precision before the model sees them. Apps send vectors
rounded to a few decimals, stored as float16 or pgvector ``halfvec``, or mixed with vectors
ragmon embedded itself; none of that is drift. Two steps keep it invisible:

- Every coordinate is rounded to one grid shared by both windows, of step ``precision``
  times the median vector norm (1e-3 by default). float16 keeps 11 significant bits, so
  its rounding error is at most 2^-11 of the coordinate: 1.2e-4 at 0.25, about the largest
  MiniLM coordinate, eight times below the step. Both windows land on the same grid
  values except where a coordinate sits within that error of a grid boundary, and those
  few move one step either way, not in a direction a linear model can learn. The grid
  adds rounding noise of sd step/√12 = 3e-4, under 1% of a coordinate's spread (0.048).
- Each dimension is divided by its spread, but never by less than ``SCALE_FLOOR`` (0.1) of
  the root-mean-square spread of all dimensions. MiniLM has two dimensions at about 1e-32
  and one with a spread of 1e-8; scaled to unit variance, the rounding noise there would
  be a perfect feature (AUC 0.89 and 50 of 50 false alarms with a reference rounded to 7
  decimals, before this floor). A dimension with a tenth of the typical spread carries
  under 1% of the variance; MiniLM's smallest real one has 0.46 of it.

The decision is the significance test alone, as for the other methods. The AUC is the
effect size: it is reported, and ``auc_floor`` can be set to also require it (off by
default; see docs/drift.md for why).
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
from pydantic import Field

from ragmon.monitor.config import Strict
from ragmon.probes.drift.methods._base import (
    MethodResult,
    check_pair,
    permutation_p_value,
)

SCALE_FLOOR = 0.1
"""No dimension is divided by less than this share of the root-mean-square spread."""


def precision_blind_features(
    reference: np.ndarray, current: np.ndarray, precision: float
) -> np.ndarray:
    """The pooled windows on one grid of step ``precision`` × median norm, centred, each
    dimension divided by its spread floored at ``SCALE_FLOOR`` × the RMS spread.

    Uses no labels, so held-out scores stay independent of held-out labels."""
    z = np.concatenate([reference, current]).astype(np.float64)
    if precision > 0:
        step = precision * float(np.median(np.linalg.norm(z, axis=1)))
        if step > 0:
            z = np.round(z / step) * step
    z -= z.mean(axis=0)
    spread = z.std(axis=0)
    typical = float(np.sqrt(np.mean(spread**2)))
    if typical == 0.0:  # every row identical on the grid: nothing to learn from
        return z
    z /= np.maximum(spread, SCALE_FLOOR * typical)
    return z


def _auc_z(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """AUC of ``scores`` for ``labels`` (1 = current) and its Mann–Whitney z-score."""
    n1 = int(labels.sum())
    n0 = labels.size - n1
    from scipy import stats  # lazily: the daemon starts without scipy
    ranks = stats.rankdata(scores)
    u = ranks[labels == 1].sum() - n1 * (n1 + 1) / 2.0
    sd = np.sqrt(n1 * n0 * (labels.size + 1) / 12.0)
    return float(u / (n1 * n0)), float((u - n1 * n0 / 2.0) / sd)


def _cross_fitted(
    z: np.ndarray, y: np.ndarray, folds: int, c: float, seed: int
) -> tuple[float, float]:
    """Mean held-out AUC over the folds, and the first fold's Mann–Whitney z-score, of
    models fitted on ``z`` (already scaled by :func:`precision_blind_features`)."""
    # scikit-learn is imported when a window is tested, not when the daemon starts: it
    # costs about 1.5 s and 150 MiB, which a daemon without a drift probe never needs.
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    pairs = []
    for train, test in split.split(z, y):
        model = LogisticRegression(C=c, max_iter=200)
        with warnings.catch_warnings():
            # A model that has not fully converged still gives valid held-out scores.
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(z[train], y[train])
        pairs.append(_auc_z(model.decision_function(z[test]), y[test]))
    return float(np.mean([a for a, _ in pairs])), pairs[0][1]


def classifier(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    alpha: float = 0.05,
    auc_floor: float = 0.5,
    precision: float = 1e-3,
    folds: int = 2,
    c: float = 0.01,
    null: str = "mann-whitney",
    permutations: int = 100,
    min_samples: int = 50,
    seed: int = 0,
) -> MethodResult:
    """Cross-fitted AUC of a reference-vs-current logistic regression.

    Parameters
    ----------
    reference, current : (n, d) and (m, d) arrays
        The two windows.
    alpha : float
        Significance level: the test must reach ``p_value <= alpha``.
    auc_floor : float
        Optional effect-size floor: above 0.5, ``drifted`` also needs the cross-fitted AUC to
        reach it (0.5 = the windows cannot be told apart, 1.0 = perfectly separable). Off
        (0.5) by default: the AUC is reported as the effect size, and the decision is the
        test's, as for every other method. Set it (0.55, say) for windows of tens of
        thousands of rows, where the test finds differences nobody cares about.
    precision : float
        Relative tolerance: coordinates are rounded to a grid of ``precision`` times the
        median vector norm before fitting, so that windows differing only by rounding,
        float16 or halfvec storage look the same (0 turns the grid off; the spread floor
        stays).
    folds : int
        Number K of stratified cross-fitting folds; each row is scored by a model that
        did not see it. The Mann–Whitney null tests one held-out fold of N/K rows, so
        K = 2 gives it the most power; larger K gives a steadier AUC estimate.
    c : float
        Inverse L2 penalty of scikit-learn's ``LogisticRegression`` on scaled features.
        Strong regularisation (0.01) fits faster and, on 384-d MiniLM windows of 500,
        separates a 20% topic injection better (mean AUC 0.60) than C = 1 (0.58), which
        overfits.
    null : {"mann-whitney", "permutation"}
        ``mann-whitney``: the U statistic of the first held-out fold (one-sided: only an
        AUC above 0.5 is evidence; normal approximation with tie correction-free
        variance, accurate from a few dozen rows per class). ``permutation``: the
        cross-fitted mean AUC against ``permutations`` label shuffles, p = (r+1)/(P+1)
        (exact, P times slower).
    permutations : int
        Shuffles for the permutation null.
    min_samples : int
        Fewer rows in either window raise InsufficientData (each fold needs both classes).
    seed : int
        Seeds the folds and the shuffles.
    """
    if null not in ("mann-whitney", "permutation"):
        raise ValueError(f"null must be 'mann-whitney' or 'permutation', got {null!r}")
    ref, cur = check_pair(reference, current, max(min_samples, folds))
    z = precision_blind_features(ref, cur, precision)
    y = np.concatenate([np.zeros(ref.shape[0], np.int64), np.ones(cur.shape[0], np.int64)])
    auc, zscore = _cross_fitted(z, y, folds, c, seed)
    if null == "mann-whitney":
        from scipy import stats  # lazily: the daemon starts without scipy
        p = float(stats.norm.sf(zscore))
    else:
        rng = np.random.default_rng(seed)
        shuffled = np.array(
            [_cross_fitted(z, rng.permutation(y), folds, c, seed)[0] for _ in range(permutations)]
        )
        p = permutation_p_value(auc, shuffled)
    floor = auc_floor if auc_floor > 0.5 else None
    drifted = bool(p <= alpha and (floor is None or auc >= floor))
    details = {"auc": auc, "z": zscore, "folds": folds, "null": null, "auc_floor": floor,
               "precision": precision}
    return MethodResult("classifier", auc, p, floor, drifted, details)


class ClassifierParams(Strict):
    """Parameters of ``classifier`` a config may set (``method_params: {classifier: ...}``)."""

    auc_floor: float = Field(default=0.5, ge=0.5, le=1.0)
    """Smallest cross-fitted AUC that counts as drift, whatever the p-value (effect size);
    0.5, the default, turns the floor off: the decision is the test's."""
    precision: float = Field(default=1e-3, ge=0.0, le=0.05)
    """Relative tolerance below which precision differences (rounding, float16, halfvec)
    are not seen: coordinates are rounded to a grid of this times the median norm."""
    folds: int = Field(default=2, ge=2, le=20)
    """Cross-fitting folds."""
    c: float = Field(default=0.01, gt=0.0)
    """Inverse L2 regularisation of the logistic regression."""
    null: Literal["mann-whitney", "permutation"] = "mann-whitney"
    """How the AUC's p-value is found: the Mann-Whitney null on held-out scores, or a
    permutation test (slower)."""
    permutations: int = Field(default=100, ge=1)
    """Permutations for ``null: permutation``."""
