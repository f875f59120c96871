"""The paired comparison with a baseline: exact McNemar, a reproducible paired bootstrap,
and a drop decision whose false-positive rate and power are measured by simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from ragmon.probes.recall.compare import compare_runs, mcnemar_p, paired_bootstrap_ci


def rows(hits: np.ndarray, recall: np.ndarray | None = None, judgments: str = "j"):  # type: ignore[no-untyped-def]
    recall = hits.astype(float) if recall is None else recall
    return {f"q{i}": {"judgments": judgments, "live": {
        "recall": {"10": float(r)}, "hit": {"10": float(h)},
        "ids": [f"d{i}", f"e{i}"] if h else [f"x{i}"], "relevant_ranks": {f"d{i}": 1} if h else {},
    }} for i, (h, r) in enumerate(zip(hits, recall, strict=True))}


def test_mcnemar_is_the_exact_binomial_test_on_discordant_pairs() -> None:
    assert mcnemar_p(10, 2) == pytest.approx(2 * 79 / 4096)
    assert mcnemar_p(3, 3) == 1.0 and mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(0, 9) == pytest.approx(binomtest(0, 9, 0.5).pvalue)


def test_bootstrap_ci_is_reproducible_and_covers_the_mean() -> None:
    deltas = np.random.default_rng(1).normal(-0.1, 0.3, size=60)
    lo, hi = paired_bootstrap_ci(deltas, 2000, 0.95, seed=0)
    assert (lo, hi) == paired_bootstrap_ci(deltas, 2000, 0.95, seed=0)
    assert lo < deltas.mean() < hi
    se = deltas.std(ddof=1) / np.sqrt(deltas.size)
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_identical_runs_never_differ() -> None:
    base = rows(np.array([1, 0, 1, 1] * 15))
    c = compare_runs(base, base, 10)
    assert not c.significant_drop and c.ci == (0.0, 0.0) and c.overlap == 1.0
    assert c.regressed == [] and c.improved == [] and c.n == 60


def test_regressed_and_improved_queries_carry_their_ranks() -> None:
    before = rows(np.array([1, 1, 0, 1]))
    after = rows(np.array([0, 1, 1, 1]))
    c = compare_runs(before, after, 10)
    assert [r["query_id"] for r in c.regressed] == ["q0"]
    assert c.regressed[0]["ranks_before"] == {"d0": 1} and c.regressed[0]["ranks_after"] == {}
    assert [r["query_id"] for r in c.improved] == ["q2"]
    assert c.b == 1 and c.c == 1 and c.overlap == pytest.approx(0.5)


def test_queries_with_changed_judgments_are_not_paired() -> None:
    before = rows(np.array([1, 1, 1]))
    after = rows(np.array([0, 0, 0]))
    after["q0"]["judgments"] = "edited"
    after["q9"] = after.pop("q2")
    assert compare_runs(before, after, 10).n == 1


def simulate(drop: float, trials: int, n: int = 65, seed: int = 0) -> float:
    """Share of trials flagged as a significant drop; per-query hit probabilities differ
    (some queries are hard), and the current run's are lowered by ``drop``."""
    rng = np.random.default_rng(seed)
    flagged = 0
    for _ in range(trials):
        p = rng.beta(2, 1, size=n)
        before = rng.random(n) < p
        after = rng.random(n) < np.clip(p - drop, 0, 1)
        c = compare_runs(rows(before), rows(after), 10, resamples=300, seed=1)
        flagged += c.significant_drop
    return flagged / trials


def test_false_positive_rate_is_at_most_alpha() -> None:
    # alpha 0.05 per test; two tests OR-ed could reach 0.1, the effect-size floor keeps the
    # combined rate near alpha. 400 trials: a rate of 0.07 is ~2.6 standard errors above 0.05.
    assert simulate(0.0, 400) <= 0.07


def test_power_against_a_real_drop() -> None:
    # 65 queries, hit rate 0.67 -> 0.37: the paired standard error is ~0.08, so z ~ 3.7
    # and the expected power ~0.95
    assert simulate(0.3, 200, seed=3) >= 0.9
    # and with fewer queries the same drop is still seen more often than not
    assert simulate(0.3, 100, n=30, seed=5) >= 0.6
