"""MMD²: the one-matrix-product permutation test against a direct computation, its level
and power on real MiniLM windows, and the random-Fourier-feature path against exact."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics.pairwise import rbf_kernel

from ragmon.probes.drift.methods import mmd as mmd_module
from ragmon.probes.drift.methods.mmd import median_gamma, mmd


def direct_mmd2(x: np.ndarray, y: np.ndarray, gamma: float) -> float:
    """Unbiased MMD² straight from the definition, with scikit-learn's RBF kernel."""
    kxx = rbf_kernel(x, x, gamma=gamma)
    kyy = rbf_kernel(y, y, gamma=gamma)
    kxy = rbf_kernel(x, y, gamma=gamma)
    n, m = len(x), len(y)
    return float(
        (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2 * kxy.mean()
    )


def test_statistic_and_null_match_the_definition(windows, monkeypatch) -> None:
    rng = np.random.default_rng(1)
    ref_rows, cur_rows = windows.injected_pair(120, 0.2, rng)
    x, y = windows.vectors[ref_rows], windows.vectors[cur_rows[-90:]]
    gamma = median_gamma(x)
    # Tiny blocks: the blocked accumulation must give the same numbers as one block.
    monkeypatch.setattr(mmd_module, "BLOCK_BYTES", 4 * 210 * 7)
    res = mmd(x, y, permutations=50, seed=3)
    assert res.details["gamma"] == pytest.approx(gamma)
    assert res.statistic == pytest.approx(direct_mmd2(x, y, gamma), abs=2e-6)
    # The permuted statistics are the statistic of random re-splits of the pooled rows.
    z = np.concatenate([x, y])
    perm_rng = np.random.default_rng(7)
    direct_null = []
    for _ in range(30):
        order = perm_rng.permutation(len(z))
        direct_null.append(direct_mmd2(z[order[:120]], z[order[120:]], gamma))
    spread = np.std(direct_null)
    assert res.details["null_mean"] == pytest.approx(np.mean(direct_null), abs=spread)
    assert res.details["null_std"] == pytest.approx(spread, rel=0.5)
    assert res.p_value == pytest.approx(1 / 51)  # the observed shift beats every permutation


def test_p_value_is_never_zero_and_has_the_permutation_floor(windows) -> None:
    x = windows.vectors[windows.pool[:100]]
    y = windows.vectors[windows.topic_rows[:100]]
    res = mmd(x, y, permutations=99)
    assert res.p_value == pytest.approx(0.01)
    assert res.drifted


def test_false_positive_rate_at_n_500(windows) -> None:
    rng = np.random.default_rng(2026)
    rejections = 0
    repeats = 200
    for i in range(repeats):
        ref_rows, cur_rows = windows.null_pair(500, rng)
        res = mmd(windows.vectors[ref_rows], windows.vectors[cur_rows], alpha=0.05,
                  permutations=200, seed=i)
        rejections += res.drifted
    rate = rejections / repeats
    assert 0.02 <= rate <= 0.08, rate


def test_power_for_a_20_percent_topic_injection(windows) -> None:
    rng = np.random.default_rng(11)
    detected = 0
    repeats = 60
    for i in range(repeats):
        ref_rows, cur_rows = windows.injected_pair(500, 0.2, rng)
        res = mmd(windows.vectors[ref_rows], windows.vectors[cur_rows], alpha=0.05,
                  permutations=200, seed=i)
        detected += res.drifted
    assert detected / repeats >= 0.9, detected


def test_random_fourier_path_tracks_the_exact_statistic(windows) -> None:
    rng = np.random.default_rng(5)
    for share, drifted in ((0.0, False), (0.2, True)):
        ref_rows, cur_rows = windows.injected_pair(800, share, rng)
        x, y = windows.vectors[ref_rows], windows.vectors[cur_rows]
        exact = mmd(x, y, permutations=200, seed=1)
        approx = mmd(x, y, permutations=200, seed=1, max_exact=100, rff_features=4096)
        assert approx.details["kernel"] == "rff" and exact.details["kernel"] == "exact"
        # Error of a D-feature kernel estimate is O(1/sqrt(D)) per entry, and mostly
        # cancels in MMD²: compare on the scale of the null's spread.
        assert abs(approx.statistic - exact.statistic) <= 2 * exact.details["null_std"]
        assert approx.drifted == exact.drifted == drifted
