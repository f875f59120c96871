"""Per-query comparison of a run with its baseline run.

A drop is judged per query, paired, not by a threshold on a mean of a few dozen numbers:

- **McNemar** (exact, two-sided binomial on the discordant pairs) on per-query hits at k:
  ``b`` queries hit in the baseline and miss now, ``c`` the reverse.
- **Paired bootstrap** confidence interval of the mean per-query recall@k difference
  (current - baseline), resampling queries with a fixed seed, so a rerun gives the same CI.
- A drop is *significant* when either test says so (McNemar p < alpha with b > c, or the
  whole CI below 0) **and** it is large enough to matter: the mean recall or hit-rate
  difference is at least ``min_effect``. Identical runs never differ.

Only queries present in both runs with the same judgments are paired; a changed golden set
is compared on what it still shares with the baseline.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts (1.0 with none)."""
    if b + c == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(min(b, c), b + c, 0.5).pvalue)


def paired_bootstrap_ci(
    deltas: np.ndarray, resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile CI of the mean of paired differences (queries resampled with replacement)."""
    if deltas.size == 0:
        return (0.0, 0.0)
    if np.all(deltas == deltas[0]):
        return (float(deltas[0]), float(deltas[0]))
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // deltas.size)  # bounded memory for large golden sets
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, deltas.size, size=(stop - start, deltas.size))
        means[start:stop] = deltas[idx].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


@dataclass
class Comparison:
    """The paired comparison of one mode (live or exact) at one k."""

    mode: str
    k: int
    n: int = 0
    b: int = 0
    c: int = 0
    p_value: float = 1.0
    mean_delta: float = 0.0
    hit_delta: float = 0.0
    ci: tuple[float, float] = (0.0, 0.0)
    significant_drop: bool = False
    regressed: list[dict[str, Any]] = field(default_factory=list)
    improved: list[dict[str, Any]] = field(default_factory=list)
    overlap: float | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "k": self.k, "paired_queries": self.n,
            "mcnemar": {"lost_hits": self.b, "gained_hits": self.c, "p_value": self.p_value},
            "recall_delta": self.mean_delta, "hit_rate_delta": self.hit_delta,
            "recall_delta_ci": list(self.ci), "significant_drop": self.significant_drop,
            "regressed_count": len(self.regressed), "improved_count": len(self.improved),
            "topk_overlap": self.overlap,
        }


def _side(data: Mapping[str, Any], mode: str) -> Mapping[str, Any]:
    return data.get(mode) or {}


def _change(
    qid: str, before: Mapping[str, Any], after: Mapping[str, Any], k: int
) -> dict[str, Any]:
    key = str(k)
    return {
        "query_id": qid,
        "recall_before": before.get("recall", {}).get(key, 0.0),
        "recall_after": after.get("recall", {}).get(key, 0.0),
        "ranks_before": before.get("relevant_ranks", {}),
        "ranks_after": after.get("relevant_ranks", {}),
    }


def paired_queries(
    baseline: Mapping[str, Mapping[str, Any]], current: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Query ids in both runs whose judgments did not change, sorted."""
    return sorted(
        q for q in current
        if q in baseline and baseline[q].get("judgments") == current[q].get("judgments")
    )


def compare_runs(
    baseline: Mapping[str, Mapping[str, Any]], current: Mapping[str, Mapping[str, Any]],
    k: int, mode: str = "live", *, alpha: float = 0.05, min_effect: float = 0.02,
    resamples: int = 2000, seed: int = 0,
) -> Comparison:
    """Compare per-query rows (query id -> stored data) of two runs at ``k``."""
    return compare_at(baseline, current, [k], mode, alpha=alpha, min_effect=min_effect,
                      resamples=resamples, seed=seed)[k]


def compare_at(
    baseline: Mapping[str, Mapping[str, Any]], current: Mapping[str, Mapping[str, Any]],
    ks: Sequence[int], mode: str = "live", *, alpha: float = 0.05, min_effect: float = 0.02,
    resamples: int = 2000, seed: int = 0, qids: list[str] | None = None,
) -> dict[int, Comparison]:
    """:func:`compare_runs` at each of ``ks``, reading each query's rows once; ``qids``:
    their :func:`paired_queries`, when the caller already has them."""
    qids = paired_queries(baseline, current) if qids is None else qids
    out = {k: Comparison(mode=mode, k=k, n=len(qids)) for k in ks}
    if not qids:
        return out
    keys = [str(k) for k in ks]
    before = [_side(baseline[q], mode) for q in qids]
    after = [_side(current[q], mode) for q in qids]
    r0, h0 = _values(before, keys)
    r1, h1 = _values(after, keys)
    for j, k in enumerate(ks):
        c = out[k]
        c.b, c.c = int(np.sum(h0[:, j] & ~h1[:, j])), int(np.sum(~h0[:, j] & h1[:, j]))
        c.p_value = mcnemar_p(c.b, c.c)
        deltas = r1[:, j] - r0[:, j]
        c.mean_delta = float(deltas.mean())
        c.hit_delta = (c.c - c.b) / len(qids)
        c.ci = paired_bootstrap_ci(deltas, resamples, 1.0 - alpha, seed)
        tested = (c.p_value < alpha and c.b > c.c) or c.ci[1] < 0
        large = min(c.mean_delta, c.hit_delta) <= -min_effect
        c.significant_drop = bool(tested and large)
        for n in np.flatnonzero(deltas).tolist():
            side = c.regressed if deltas[n] < 0 else c.improved
            side.append(_change(qids[n], before[n], after[n], k))
        c.regressed.sort(key=lambda r: (r["recall_after"] - r["recall_before"], r["query_id"]))
        c.improved.sort(key=lambda r: (r["recall_before"] - r["recall_after"], r["query_id"]))
        c.overlap = topk_overlap(before, after, k)
    return out


def _values(sides: list[Mapping[str, Any]], keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Recall (float) and hit (bool) of each side at each k, one row per query."""
    return (_column(sides, "recall", keys), _column(sides, "hit", keys) > 0)


def _column(sides: list[Mapping[str, Any]], name: str, keys: list[str]) -> np.ndarray:
    """``side[name][key]`` for every side and key (0 where missing), as a matrix."""
    get = operator.itemgetter(*keys)
    try:  # every side has every k (a stored run always does): one C call per side
        got = [get(side[name]) for side in sides]
    except (KeyError, TypeError):
        got = [[side.get(name, {}).get(key, 0.0) for key in keys] for side in sides]
    return np.array(got, dtype=float).reshape(len(sides), len(keys))


def topk_overlap(
    before: list[Mapping[str, Any]], after: list[Mapping[str, Any]], k: int
) -> float | None:
    """Mean share of the baseline's top-k ids still in the current top-k (1 = no churn)."""
    shares = []
    for s0, s1 in zip(before, after, strict=True):
        ids0, ids1 = s0.get("ids"), s1.get("ids")
        if ids0 is None or ids1 is None:
            continue
        if ids0[:k] == ids1[:k]:  # the usual case, without building two sets
            shares.append(1.0 if ids0[:1] else 0.0)
            continue
        top0, top1 = set(ids0[:k]), set(ids1[:k])
        shares.append(len(top0 & top1) / max(len(top0), len(top1), 1))
    return float(np.mean(shares)) if shares else None
