"""Alarms that can be trusted: a per-window alpha derived from a target false-alarm rate,
and a persistence rule before paging.

One window that differs is evidence; an alarm pages a person. With hourly windows and a
plain alpha of 0.05, a perfectly stable system raises 36 false alarms a month. Instead the
operator states how many false alarms per period they accept (default: one a month), the
window frequency turns that into a per-window false-alarm probability ``q``, and:

- ``k_of_n``: the alarm is on when at least ``k`` of the last ``n`` windows differ. Under
  the null the windows' verdicts are independent Bernoulli(alpha), so
  ``P(alarm) = P(Binomial(n, alpha) >= k)``; alpha is solved so that this equals ``q``.
  With ``k = n = 1`` this is ``alpha = q`` (hourly, one a month: 0.0014).
- ``cusum``: one-sided CUSUM on the standardised statistic ``z = Φ⁻¹(1 - p)`` (standard
  normal under the null, whatever the method): ``S = max(0, S + z - drift)``, alarm when
  ``S > h``, held until ``S`` is back at 0. ``h`` is set so that the in-control average
  run length (Siegmund's approximation) is ``1 / q`` windows. The per-window "differs"
  verdict then uses ``q``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import exp
from statistics import NormalDist
from typing import Literal

RuleKind = Literal["k_of_n", "cusum"]
_NORMAL = NormalDist()


@dataclass(frozen=True)
class Calibration:
    """What the alarm rule runs with, and the numbers it was derived from."""

    rule: RuleKind
    alpha: float
    per_window_rate: float
    windows_per_period: float
    k: int = 1
    n: int = 1
    cusum_drift: float = 0.5
    cusum_h: float = 0.0

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "rule": self.rule, "alpha": self.alpha, "per_window_rate": self.per_window_rate,
            "windows_per_period": self.windows_per_period, "k": self.k, "n": self.n,
            "cusum_drift": self.cusum_drift, "cusum_h": self.cusum_h,
        }


def k_of_n_alpha(rate: float, k: int, n: int) -> float:
    """The alpha with ``P(Binomial(n, alpha) >= k) = rate``."""
    if not 0 < rate < 1:
        raise ValueError(f"false-alarm rate per window must be in (0, 1), got {rate!r}")
    if not 1 <= k <= n:
        raise ValueError(f"k-of-n needs 1 <= k <= n, got k={k}, n={n}")
    from scipy import optimize, stats  # lazily: the daemon starts without scipy
    return float(optimize.brentq(lambda a: stats.binom.sf(k - 1, n, a) - rate, 1e-15, 1.0))


def siegmund_arl(h: float, drift: float) -> float:
    """In-control average run length of a CUSUM on N(0, 1) with reference ``drift``."""
    delta = -drift  # mean of the increment z - drift under the null
    b = h + 1.166
    return (exp(-2.0 * delta * b) + 2.0 * delta * b - 1.0) / (2.0 * delta * delta)


def cusum_threshold(rate: float, drift: float = 0.5) -> float:
    """The ``h`` whose in-control run length is ``1 / rate`` windows."""
    target = 1.0 / rate
    from scipy import optimize  # lazily: the daemon starts without scipy
    return float(optimize.brentq(lambda h: siegmund_arl(h, drift) - target, 0.0, 200.0))


def calibrate(
    false_alarms: float,
    period_seconds: float,
    window_seconds: float,
    rule: RuleKind = "k_of_n",
    k: int = 2,
    n: int = 3,
    cusum_drift: float = 0.5,
) -> Calibration:
    """Per-window alpha and persistence parameters for a target false-alarm rate.

    Parameters
    ----------
    false_alarms : float
        Accepted number of false alarms per ``period_seconds`` on a system that did not
        drift (for example 1 per 30 days).
    period_seconds, window_seconds : float
        The period of that budget and the time between windows (the probe's interval).
    rule : {"k_of_n", "cusum"}
        Persistence rule (see the module docstring).
    k, n : int
        For ``k_of_n``: alarm when at least k of the last n windows differ.
    cusum_drift : float
        For ``cusum``: the reference value subtracted from each z (0.5 is tuned to detect a
        shift of about one standard deviation quickly).
    """
    windows = period_seconds / window_seconds
    if windows <= 1:
        raise ValueError(
            f"the false-alarm period ({period_seconds:g}s) must span more than one window "
            f"({window_seconds:g}s)"
        )
    rate = min(false_alarms / windows, 0.5)
    if rule == "k_of_n":
        alpha = k_of_n_alpha(rate, k, n)
        return Calibration("k_of_n", alpha, rate, windows, k=k, n=n)
    h = cusum_threshold(rate, cusum_drift)
    return Calibration("cusum", rate, rate, windows, cusum_drift=cusum_drift, cusum_h=h)


def z_from_p(p_value: float) -> float:
    """Standardised statistic: ``Φ⁻¹(1 - p)``, clipped so p = 0 or 1 stays finite."""
    return _NORMAL.inv_cdf(1.0 - min(max(p_value, 1e-15), 1.0 - 1e-15))


@dataclass(frozen=True)
class AlarmState:
    """The persistence rule's memory, stored with each run so restarts keep it."""

    recent: tuple[bool, ...] = ()
    cusum: float = 0.0
    alarm: bool = False


def update(
    state: AlarmState, calibration: Calibration, drifted: bool, p_value: float | None
) -> AlarmState:
    """Advance the rule by one window."""
    if calibration.rule == "k_of_n":
        recent = (*state.recent, drifted)[-calibration.n :]
        return AlarmState(recent, 0.0, sum(recent) >= calibration.k)
    z = z_from_p(1.0 if p_value is None else p_value)
    s = max(0.0, state.cusum + z - calibration.cusum_drift)
    # Latched until the sum is back at 0: an alarm ends only once the evidence is gone,
    # so a persisting drift does not flap, and every new alarm starts from 0 as the
    # calibrated run length assumes.
    alarm = s > calibration.cusum_h or (state.alarm and s > 0.0)
    return AlarmState((*state.recent, drifted)[-8:], s, alarm)


def replay(
    calibration: Calibration, verdicts: Sequence[tuple[bool, float | None]]
) -> list[bool]:
    """The alarm after each window of a sequence of (drifted, p-value) verdicts."""
    state = AlarmState()
    out = []
    for drifted, p in verdicts:
        state = update(state, calibration, drifted, p)
        out.append(state.alarm)
    return out
