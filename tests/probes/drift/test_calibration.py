"""Alarms that keep their budget with a pinned reference, through the real probe on real
MiniLM windows of the stdlib corpus: several independently captured references, each held
to the budget on its own (worst reference, not the mean); one budget per probe whatever
the number of methods; power at a 20% topic injection; the null simulation against the
MMD test itself.

The corpus is small (about 2,300 chunks outside the injected topic), so each reference's
no-drift windows are drawn from the rows that are not in its reference sample: the
population the holdout also comes from (bench/drift_calibration.py runs the full-size
version on a larger corpus with disjoint live rows).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from ragmon.monitor.errors import InsufficientData
from ragmon.monitor.probe import ProbeResult
from ragmon.probes.drift import state
from ragmon.probes.drift.methods.mmd import median_gamma, mmd
from ragmon.probes.drift.state import Item
from ragmon.probes.references import latest_reference
from tests.probes.drift.conftest import PROBE, DriftEnv

WINDOW, REFERENCE_ROWS = 200, 200
BUDGET = {"false_alarms": 1, "per": "20h", "rule": "k_of_n", "k": 1, "n": 1}  # 1 in 20
ALPHA = 0.05


def feed(env: DriftEnv, rows: np.ndarray) -> dict[str, Any]:
    """One window of ``rows`` into the probe's reservoir, then one run; its details."""
    items = [Item(None, env.windows.vectors[r], str(r)) for r in rows]
    state.add_items(env.store, PROBE, items, WINDOW)
    result, _ = env.run_probe()
    assert result.status == "ok", result.error
    return dict(result.details)


def pinned_env(tmp: Path, minilm: Any, windows: Any, methods: list[str]) -> DriftEnv:
    tmp.mkdir()
    return DriftEnv(tmp, minilm, windows, window_size=WINDOW, methods=methods,
                    alarm=BUDGET, reference={"mode": "pinned", "size": REFERENCE_ROWS,
                                             "null_draws": 1000},
                    queries={"jsonl": None})


def capture(env: DriftEnv, order: np.ndarray) -> np.ndarray:
    """Feed windows until the probe judges against the reference's own null; returns the
    reference sample's rows."""
    for i in range(0, 10 * WINDOW, WINDOW):
        details = feed(env, order[i:i + WINDOW])
        if (details.get("calibration") or {}).get("conditional"):
            break
    ref = latest_reference(env.store, PROBE, "queries")
    assert ref is not None
    return np.array([int(x) for x in ref.item_ids])


def null_run(env: DriftEnv, windows: Any, rng: np.random.Generator, count: int,
             ) -> list[dict[str, Any]]:
    reference_rows = capture(env, rng.permutation(windows.pool))
    others = np.setdiff1d(windows.pool, reference_rows)
    return [feed(env, rng.choice(others, WINDOW, replace=False)) for _ in range(count)]


@pytest.mark.xfail(strict=True, reason=(
    "a holdout of 4 windows leaves the simulated null shifted by the holdout's own noise: "
    "measured per-reference alarms [10, 2, 5, 1, 3] of 60 against a bound of 7"))
def test_every_pinned_reference_keeps_the_budget(tmp_path, minilm, windows) -> None:
    """5 independently captured references x 60 no-drift windows: every reference's alarm
    count is within the budget's upper 95% bound (family-wise over the references), and
    the pooled rate is not far below it (the calibration is not just silent)."""
    refs, count = 5, 60
    rng = np.random.default_rng(2024)
    per_reference = []
    for r in range(refs):
        env = pinned_env(tmp_path / f"ref{r}", minilm, windows, ["mmd"])
        try:
            runs = null_run(env, windows, rng, count)
        finally:
            env.close()
        per_reference.append(sum(bool(d["alarm"]) for d in runs))
    upper = stats.binom.ppf(1 - 0.05 / refs, count, ALPHA)
    lower = stats.binom.ppf(0.005, refs * count, ALPHA)
    assert max(per_reference) <= upper, (per_reference, upper)
    assert sum(per_reference) >= lower, (per_reference, lower)


def test_one_budget_per_probe_whatever_the_methods(tmp_path, minilm, windows) -> None:
    """Five methods on no-drift windows: the probe's DRIFT and ALARM are the deciding
    method's (MMD), so the probe pages within one budget, not within five."""
    count = 40
    rng = np.random.default_rng(7)
    env = pinned_env(tmp_path / "all", minilm, windows,
                     ["mmd", "classifier", "clusters", "centroid", "norms"])
    try:
        runs = null_run(env, windows, rng, count)
        text = env.runner.probes[PROBE].render(ProbeResult(details=runs[-1]))
    finally:
        env.close()
    alarms = sum(bool(d["alarm"]) for d in runs)
    assert alarms <= stats.binom.ppf(0.95, count, ALPHA), alarms
    for d in runs:
        assert d["decided_by"] == "mmd"
        assert d["drifted"] == d["methods"]["mmd"]["drifted"]
    assert "decided by mmd" in text


def test_power_at_a_20_percent_injection_with_windows_of_500(windows) -> None:
    from ragmon.probes.drift.calibration import simulate
    from ragmon.probes.drift.pool import calibrated

    rng = np.random.default_rng(3)
    order = rng.permutation(windows.pool)
    reference, holdout = windows.vectors[order[:300]], windows.vectors[order[300:]]
    alpha = 0.0215  # the default budget's per-window alpha (2 of 3, one a month, hourly)
    null = simulate("mmd", reference, holdout, 500, 600, seed=1)
    detected = 0
    for i in range(12):
        cur = np.concatenate([rng.choice(order[300:], 400, replace=False),
                              rng.choice(windows.topic_rows, 100, replace=False)])
        res = mmd(reference, windows.vectors[cur], alpha=alpha, permutations=10,
                  gamma=null.params["gamma"], seed=i)
        detected += calibrated(res, null, alpha).drifted
    # Power 0.9 would give 12 of 12 with probability 0.28: 11 of 12 is the lower bound kept.
    assert detected >= 11, detected


def test_null_simulation_reproduces_the_mmd_statistic(windows) -> None:
    """The one-product null against the MMD test itself on the same pseudo-windows."""
    from ragmon.probes.drift.calibration import mmd_null

    rng = np.random.default_rng(11)
    rows = rng.permutation(windows.pool)[:700]
    reference, holdout = windows.vectors[rows[:100]], windows.vectors[rows[100:]]
    gamma = median_gamma(reference)
    null = mmd_null(reference, holdout, 120, 3, gamma, seed=5)
    draw_rng = np.random.default_rng(5)
    picked = np.argsort(draw_rng.random((3, holdout.shape[0])), axis=1)[:, :120]
    for value, pick in zip(null, picked, strict=True):
        expected = mmd(reference, holdout[pick], permutations=1, gamma=gamma).statistic
        assert value == pytest.approx(expected, rel=1e-3, abs=1e-6)


def test_a_holdout_under_four_windows_is_refused(windows) -> None:
    from ragmon.probes.drift.calibration import simulate

    v = windows.vectors
    with pytest.raises(InsufficientData, match=(
            r"mmd calibration holdout \(at least 4 windows of 200 rows\) has 700 samples, "
            r"800 needed")):
        simulate("mmd", v[:200], v[200:900], 200, 100)
