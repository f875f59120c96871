"""Which golden queries get ground truth this run, and how sure the fidelity is.

Exact search is the expensive half of a recall run. ``exact_budget`` bounds it; when the
whole golden set does not fit, fidelity is measured on a subset of the queries:

- **How many.** The seconds one query's ground truth cost in the newest run that measured
  it (stored in that run's details, scaled by the index's growth since), or, when that run
  ran out of budget, the projection its ``GroundTruthBudgetExceeded`` gave. ``SAFETY`` of
  the budget is planned for, so a noisy machine does not push the next run over it.
- **Which.** A fixed permutation of the golden set, seeded by its version, is cut into
  ceil(N / s) slices of s queries (the last one wraps around to the start); run r takes
  slice r mod that. Each slice is a simple random sample of the golden set, and over
  ceil(N / s) consecutive runs every query is measured at least once.
- **How sure.** :func:`fidelity_interval`: a Wilson score interval on the mean per-query
  fidelity with the effective sample size of the per-query variance (Korn and Graubard's
  design-effect correction) and the finite-population correction, since the subset is
  drawn without replacement from the N queries. With every query measured the interval is
  the point: there is nothing left to sample.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Share of the budget a run plans to use, from the previous run's measured rate.
SAFETY = 0.7


@dataclass
class Plan:
    """The queries (positions in the golden set) that get ground truth this run."""

    chosen: list[int]
    size: int  # queries per slice (s); == total when the whole golden set fits
    total: int
    rotation: int  # r: this run's position in the rotation
    slices: int  # ceil(N / s)
    estimate: float | None  # planned seconds per query (None: nothing measured yet)

    @property
    def slice(self) -> int:
        return self.rotation % self.slices

    def summary(self) -> dict[str, Any]:
        return {"size": self.size, "total": self.total, "rotation": self.rotation,
                "slice": self.slice, "slices": self.slices,
                "seconds_per_query": self.estimate}


def permutation(n: int, version: str) -> np.ndarray:
    """The fixed order of the golden set's queries for one golden set version."""
    seed = int.from_bytes(hashlib.sha256(f"ground-truth:{version}".encode()).digest()[:8],
                          "big")
    order: np.ndarray = np.random.default_rng(seed).permutation(n)
    return order


def slice_of(order: np.ndarray, size: int, rotation: int) -> list[int]:
    """Slice ``rotation mod ceil(n / size)`` of ``order``: ``size`` positions, wrapping."""
    n = len(order)
    size = max(1, min(size, n))
    slices = math.ceil(n / size)
    start = (rotation % slices) * size
    idx = np.arange(start, start + size) % n
    return sorted(order[idx].tolist())


def plan(n: int, version: str, budget: float, previous: dict[str, Any] | None,
         count: int) -> Plan:
    """The subset this run measures: everything when the estimate says it fits (or there is
    none yet), else the next slice of the rotation. ``previous`` is the newest earlier
    run's ground-truth record; ``count`` the index's size now."""
    prev = previous or {}
    estimate = per_query_seconds(rate_record(prev), count)
    size = n if estimate is None or estimate <= 0 else int(budget * SAFETY / estimate)
    return choose(n, version, size, int(prev.get("rotation", -1)) + 1, estimate)


def choose(n: int, version: str, size: int, rotation: int, estimate: float | None) -> Plan:
    """Slice ``rotation`` of the rotation in slices of ``size`` (at least 1, at most n)."""
    size = max(1, min(n, size))
    if size >= n:
        return Plan(list(range(n)), n, n, rotation, 1, estimate)
    chosen = slice_of(permutation(n, version), size, rotation)
    return Plan(chosen, size, n, rotation, math.ceil(n / size), estimate)


def per_query_seconds(prev: dict[str, Any], count: int) -> float | None:
    """Seconds of ground truth per query, from a previous run's record, scaled to the
    index's size now (exact search costs in proportion to the vectors it scans)."""
    seconds, queries = prev.get("seconds"), prev.get("queries")
    if not seconds or not queries:
        return None
    then = prev.get("count") or count
    return float(seconds) / int(queries) * (count / then if then else 1.0)


@dataclass
class Interval:
    mean: float
    lower: float
    upper: float


def fidelity_interval(values: np.ndarray | list[float], population: int,
                      confidence: float = 0.95) -> Interval:
    """Confidence interval of the mean fidelity of all ``population`` queries from the
    per-query fidelities of a simple random sample of them (see the module docstring)."""
    x = np.asarray(values, dtype=np.float64)
    n = x.size
    if n == 0:
        return Interval(float("nan"), 0.0, 1.0)
    mean = float(x.mean())
    fpc = max(0.0, 1.0 - n / population) if population > 0 else 0.0
    if fpc == 0.0:
        return Interval(mean, mean, mean)
    from scipy.stats import beta, norm, t

    var = float(x.var(ddof=1)) / n * fpc if n > 1 else 0.0
    binomial = mean * (1.0 - mean)
    # effective sample size: the binomial count whose spread is the measured one
    n_eff = binomial / var if var > 0 and binomial > 0 else n / fpc
    if n > 1:  # degrees of freedom: the variance is estimated from n values
        n_eff *= (norm.ppf(0.5 + confidence / 2) / t.ppf(0.5 + confidence / 2, n - 1)) ** 2
    hits, tail = mean * n_eff, (1.0 - confidence) / 2
    lower = float(beta.ppf(tail, hits, n_eff - hits + 1)) if hits > 0 else 0.0
    upper = float(beta.ppf(1 - tail, hits + 1, n_eff - hits)) if hits < n_eff else 1.0
    return Interval(mean, lower, upper)


# -- one run's ground truth --------------------------------------------------------------

#: Why a run measured no fidelity: the ``reason`` label of ``ground_truth_skipped_total``.
SKIP_REASONS = ("budget", "error")


@dataclass
class Previous:
    """What the newest successful run of the probe left: its ground-truth record and its
    cumulative skip counts (the counter carries on from them)."""

    record: dict[str, Any]
    skipped: dict[str, float]


def previous(store: Any, probe: str) -> Previous:
    """The newest successful run's ground-truth record, one lookup in the (probe, instance,
    status, id) index."""
    from sqlalchemy import select

    from ragmon.monitor.store import index_prefix
    from ragmon.monitor.store.models import ProbeRun, RunValue

    key = (ProbeRun.probe, ProbeRun.instance, ProbeRun.status)
    with store.session() as s:
        run = s.scalars(select(ProbeRun).where(
            index_prefix(key, (probe, store.instance, "ok"), ProbeRun.id))
            .order_by(*(c.desc() for c in (*key, ProbeRun.id))).limit(1)).first()
        if run is None:
            return Previous({}, {})
        values = s.scalars(select(RunValue).where(
            RunValue.run_id == run.id, RunValue.name == "ground_truth_skipped_total")).all()
        record = ((run.details or {}).get("fidelity") or {}).get("ground_truth") or {}
        from ragmon.monitor.store import parse_labels

        skipped = {str(parse_labels(v.labels).get("reason")): float(v.value) for v in values}
    return Previous(record, skipped)


def rate_record(record: dict[str, Any]) -> dict[str, Any]:
    """The seconds and queries a ground-truth record says one pass cost: measured, or
    projected by a target that ran out of budget (a lower bound then)."""
    if record.get("skipped") == "budget" and record.get("projected"):
        return {"seconds": record["projected"], "queries": record.get("asked"),
                "count": record.get("count")}
    if record.get("queries"):
        return record
    per = record.get("seconds_per_query")  # nothing measured: keep the last estimate
    return {"seconds": per, "queries": 1, "count": record.get("count")} if per else {}
