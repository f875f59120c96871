"""Labelled relevance metrics of one ranked result list, with trec_eval semantics.

- A document is *relevant* when its judged grade is > 0; unjudged and missing results are
  non-relevant.
- recall@k = relevant documents in the top k / all relevant judged documents.
- precision@k = relevant documents in the top k / k (a short list is not rewarded).
- hit rate@k = 1 when at least one relevant document is in the top k.
- MRR = 1 / rank of the first relevant document in the whole returned list (0 if none).
- nDCG@k: gain = grade (linear, trec_eval ``ndcg_cut``) or 2**grade - 1 (exponential),
  discount log2(rank + 1); the ideal DCG is taken over *all* judged documents, sorted by
  grade, cut at k.
- A query whose search failed or timed out gets :func:`zero_metrics` and stays in the mean.

Tie-breaking (deterministic, the same as trec_eval): results are taken in the engine's
order, and inside a run of equal scores documents are ordered by id, descending (plain
string comparison). A duplicate id counts once, at its first position.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Gain = Literal["linear", "exponential"]


def break_ties(ids: Sequence[str], scores: Sequence[float] | None) -> list[str]:
    """The ranked list after the tie rule: equal adjacent scores -> id descending."""
    if scores is None or len(scores) != len(ids):
        ranked = list(ids)
    elif len(set(scores)) == len(scores):  # no two scores equal: nothing to reorder
        ranked = list(ids)
    else:
        ranked = []
        start = 0
        for i in range(1, len(ids) + 1):
            if i == len(ids) or scores[i] != scores[start]:
                ranked.extend(sorted(ids[start:i], reverse=True))
                start = i
    if len(set(ranked)) == len(ranked):
        return ranked
    return list(dict.fromkeys(ranked))  # a duplicate counts once, at its first position


def gain_of(grade: float, gain: Gain) -> float:
    if grade <= 0:
        return 0.0
    return grade if gain == "linear" else 2.0**grade - 1.0


def ideal_dcg(ordered: Sequence[float], k: int, gain: Gain) -> float:
    """IDCG@k of the positive judged grades ``ordered`` highest first."""
    return sum(gain_of(g, gain) / math.log2(i + 2) for i, g in enumerate(ordered[:k]))


@functools.lru_cache(maxsize=4096)
def _ideal(ordered: tuple[float, ...], ks: tuple[int, ...], gain: Gain) -> tuple[float, ...]:
    """:func:`ideal_dcg` at each k, once per pattern of grades (a golden set repeats few)."""
    return tuple(ideal_dcg(ordered, k, gain) for k in ks)


@dataclass
class QueryMetrics:
    """One query's metrics at each k, plus where its relevant documents were found."""

    recall: dict[int, float] = field(default_factory=dict)
    precision: dict[int, float] = field(default_factory=dict)
    hit: dict[int, float] = field(default_factory=dict)
    ndcg: dict[int, float] = field(default_factory=dict)
    rr: float = 0.0
    relevant_ranks: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "recall": {str(k): v for k, v in self.recall.items()},
            "precision": {str(k): v for k, v in self.precision.items()},
            "hit": {str(k): v for k, v in self.hit.items()},
            "ndcg": {str(k): v for k, v in self.ndcg.items()},
            "rr": self.rr,
            "relevant_ranks": self.relevant_ranks,
        }


def zero_metrics(ks: Iterable[int]) -> QueryMetrics:
    """What a failed or timed-out query scores: 0 everywhere (never dropped from means)."""
    ks = list(ks)
    zeros = dict.fromkeys(ks, 0.0)
    return QueryMetrics(dict(zeros), dict(zeros), dict(zeros), dict(zeros), 0.0, {})


def query_metrics(
    ranked: Sequence[str], grades: Mapping[str, float], ks: Iterable[int], gain: Gain = "linear"
) -> QueryMetrics:
    """Metrics of ``ranked`` (already tie-broken, see :func:`break_ties`) at each k: one
    list through :func:`stored_batch`, which a run uses for all its lists at once."""
    ks = tuple(ks)
    side = stored_batch([list(dict.fromkeys(ranked))], [grades], ks, tuple(map(str, ks)),
                        gain)[0]

    def by_k(name: str) -> dict[int, float]:
        values: dict[str, float] = side[name]  # type: ignore[assignment]
        return {k: values[str(k)] for k in ks}

    return QueryMetrics(by_k("recall"), by_k("precision"), by_k("hit"), by_k("ndcg"),
                        side["rr"], side["relevant_ranks"])  # type: ignore[arg-type]


def stored_batch(
    ranked: Sequence[Sequence[str]], grades: Sequence[Mapping[str, float]],
    ks: tuple[int, ...], keys: tuple[str, ...], gain: Gain = "linear",
) -> list[dict[str, object]]:
    """What a run stores for each of many ranked lists (each holds an id once, as
    :func:`break_ties` leaves it): ``{"ids": ranked, **query_metrics(...).as_dict()}`` with
    the ks as ``keys``, equal to it value for value. The gains by rank go into one matrix
    whose running sums (left to right, as the one-list loop adds them; adding a zero changes
    no float) give every k at once."""
    n = len(ranked)
    if n == 0:
        return []
    # a query's live and exact sides share one grades mapping: its gains and ideal DCG once
    judged: dict[int, tuple[dict[str, float], tuple[float, ...]]] = {}
    for one in grades:
        if id(one) not in judged:
            judged[id(one)] = (
                {d: gain_of(g, gain) for d, g in one.items() if g > 0},
                _ideal(tuple(sorted((g for g in one.values() if g > 0), reverse=True)), ks,
                       gain))
    gains = [judged[id(one)][0] for one in grades]
    lengths = [len(r) for r in ranked]
    depth = max(max(lengths), max(ks))
    # NaN: not relevant (a relevant document's gain can be 0.0: 2**g - 1 of a tiny grade)
    matrix = np.full((n, depth), np.nan)
    flat = [g.get(d, np.nan) for r, g in zip(ranked, gains, strict=True) for d in r]
    if flat:
        counts = np.asarray(lengths)
        starts = np.cumsum(counts) - counts
        matrix[np.repeat(np.arange(n), counts),
               np.arange(len(flat)) - np.repeat(starts, counts)] = flat
    relevant = ~np.isnan(matrix)
    matrix[~relevant] = 0.0
    found = np.cumsum(relevant, axis=1)
    dcg = np.cumsum(matrix / _discounts(depth), axis=1)
    n_relevant = np.array([len(g) for g in gains])
    ideal = np.array([judged[id(one)][1] for one in grades]).reshape(n, len(ks))
    cols = np.array(ks) - 1
    hits = found[:, cols]
    recall = np.divide(hits, n_relevant[:, None], out=np.zeros(hits.shape),
                       where=n_relevant[:, None] > 0)
    precision = hits / np.array(ks)
    ndcg = np.divide(dcg[:, cols], ideal, out=np.zeros(hits.shape), where=ideal > 0)
    first = np.argmax(relevant, axis=1) + 1
    rr = np.where(relevant.any(axis=1), 1.0 / first, 0.0).tolist()
    ranks: list[dict[str, int]] = [{} for _ in range(n)]
    at_row, at_col = np.nonzero(relevant)  # row by row, best rank first
    for i, j in zip(at_row.tolist(), at_col.tolist(), strict=True):
        ranks[i][ranked[i][j]] = j + 1
    return [{"ids": r, "recall": dict(zip(keys, rec, strict=True)),
             "precision": dict(zip(keys, pre, strict=True)),
             "hit": dict(zip(keys, hit, strict=True)), "ndcg": dict(zip(keys, nd, strict=True)),
             "rr": one_rr, "relevant_ranks": one_ranks}
            for r, rec, pre, hit, nd, one_rr, one_ranks in zip(
                ranked, recall.tolist(), precision.tolist(), (hits > 0).astype(float).tolist(),
                ndcg.tolist(), rr, ranks, strict=True)]


_DISCOUNTS: dict[int, np.ndarray] = {}


def _discounts(depth: int) -> np.ndarray:
    """``math.log2(rank + 1)`` for ranks 1..depth (math's, so a division by it rounds as
    the one-list loop's does)."""
    if depth not in _DISCOUNTS:
        _DISCOUNTS[depth] = np.array([math.log2(rank + 1) for rank in range(1, depth + 1)])
    return _DISCOUNTS[depth]


def mean_metrics(
    per_query: Sequence[QueryMetrics], ks: Iterable[int]
) -> dict[str, dict[int, float]]:
    """Means over queries: ``{"recall": {k: mean}, ..., "mrr": {0: value}}``."""
    return stored_means([q.as_dict() for q in per_query], list(ks))


def stored_means(sides: Sequence[Mapping[str, Any]],
                 ks: Sequence[int]) -> dict[str, dict[int, float]]:
    """:func:`mean_metrics` of stored sides (JSON: string keys), summed query by query,
    without turning each back into metrics first."""
    n = max(len(sides), 1)
    keys = [str(k) for k in ks]
    get = operator.itemgetter(*keys)
    out: dict[str, dict[int, float]] = {}
    for name in ("recall", "precision", "hit", "ndcg"):
        rows = [get(side[name]) for side in sides]
        columns = [tuple(rows)] if len(keys) == 1 else \
            list(zip(*rows, strict=True)) or [()] * len(keys)  # no sides: each mean is 0
        out[name] = {k: sum(column) / n for k, column in zip(ks, columns, strict=True)}
    out["mrr"] = {0: sum(side["rr"] for side in sides) / n}
    return out
