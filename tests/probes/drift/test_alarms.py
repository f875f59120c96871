"""Alarm calibration: per-window alpha from a false-alarm budget, and the persistence
rules' false-alarm rate at or below the target (simulated nulls and real MMD windows)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ragmon.probes.drift.alarms import (
    AlarmState,
    calibrate,
    k_of_n_alpha,
    replay,
    siegmund_arl,
    update,
)
from ragmon.probes.drift.methods.mmd import mmd

HOUR, MONTH = 3600.0, 30 * 86400.0


def test_one_false_alarm_a_month_with_hourly_windows() -> None:
    cal = calibrate(1, MONTH, HOUR, rule="k_of_n", k=1, n=1)
    assert cal.alpha == pytest.approx(1 / 720)
    assert cal.alpha == pytest.approx(0.0014, abs=1e-4)
    cal = calibrate(1, MONTH, HOUR, rule="k_of_n", k=2, n=3)
    assert stats.binom.sf(1, 3, cal.alpha) == pytest.approx(1 / 720)
    assert cal.alpha > 0.02  # persistence buys a much looser per-window test


def test_bad_calibration_inputs_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="must span more than one window"):
        calibrate(1, HOUR, HOUR)
    with pytest.raises(ValueError, match="k-of-n needs 1 <= k <= n, got k=4, n=3"):
        k_of_n_alpha(0.01, 4, 3)


@pytest.mark.parametrize("rule", ["k_of_n", "cusum"])
def test_simulated_null_false_alarm_rate_is_at_most_the_target(rule) -> None:
    cal = calibrate(1, 200 * HOUR, HOUR, rule=rule)  # target: 1 alarm per 200 windows
    rng = np.random.default_rng(0)
    p = rng.uniform(size=60_000)
    alarms = np.array(replay(cal, [(bool(pi <= cal.alpha), float(pi)) for pi in p]))
    onsets = np.count_nonzero(alarms[1:] & ~alarms[:-1]) + int(alarms[0])
    target = len(p) / 200
    # Onsets of alarms (pages) stay at or below the budget, up to Monte Carlo noise.
    assert onsets <= target + 3 * np.sqrt(target), (onsets, target)
    if rule == "k_of_n":
        # For k-of-n the calibration bounds the share of windows in alarm, too.
        assert alarms.mean() <= 1 / 200 * 1.3


def test_siegmund_approximation_against_simulation() -> None:
    cal = calibrate(1, 100 * HOUR, HOUR, rule="cusum")
    assert siegmund_arl(cal.cusum_h, cal.cusum_drift) == pytest.approx(100, rel=1e-6)
    rng = np.random.default_rng(1)
    lengths = []
    for _ in range(300):
        state, t = AlarmState(), 0
        while not state.alarm:
            t += 1
            state = update(state, cal, False, float(rng.uniform()))
        lengths.append(t)
    assert np.mean(lengths) >= 100 * 0.8


def test_alarm_rule_on_real_mmd_windows(windows) -> None:
    """Independent no-drift windows through the calibrated 2-of-3 rule: no page beyond the
    budget; an injected topic that persists pages within three windows."""
    cal = calibrate(1, 20 * HOUR, HOUR, rule="k_of_n", k=2, n=3)  # 1 per 20 windows
    rng = np.random.default_rng(5)
    verdicts = []
    for i in range(200):
        ref_rows, cur_rows = windows.null_pair(300, rng)
        res = mmd(windows.vectors[ref_rows], windows.vectors[cur_rows], alpha=cal.alpha,
                  permutations=200, seed=i)
        verdicts.append((res.drifted, res.p_value))
    rate = float(np.mean(replay(cal, verdicts)))
    assert rate <= 1 / 20 + 2 * np.sqrt(1 / 20 * 19 / 20 / 200), rate
    drifted = []
    for i in range(3):
        ref_rows, cur_rows = windows.injected_pair(300, 0.2, rng)
        res = mmd(windows.vectors[ref_rows], windows.vectors[cur_rows], alpha=cal.alpha,
                  permutations=200, seed=i)
        drifted.append((res.drifted, res.p_value))
    assert replay(cal, verdicts[-3:] + drifted)[-1]
