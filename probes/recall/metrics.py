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

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

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
    """Metrics of ``ranked`` (already tie-broken, see :func:`break_ties`) at each k."""
    relevant = {d for d, g in grades.items() if g > 0}
    n_relevant = len(relevant)
    ranks = {doc: i + 1 for i, doc in enumerate(ranked) if doc in relevant}
    out = QueryMetrics(relevant_ranks=ranks)
    out.rr = 1.0 / min(ranks.values()) if ranks else 0.0
    # The found documents by rank, and the ideal gains by grade, once for every k.
    found_ranks = sorted((rank, gain_of(grades[doc], gain)) for doc, rank in ranks.items())
    ideal = sorted((g for g in grades.values() if g > 0), reverse=True)
    for k in ks:
        found = 0
        dcg = 0.0
        for rank, gained in found_ranks:
            if rank > k:
                break
            found += 1
            dcg += gained / math.log2(rank + 1)
        out.recall[k] = found / n_relevant if n_relevant else 0.0
        out.precision[k] = found / k
        out.hit[k] = 1.0 if found else 0.0
        idcg = ideal_dcg(ideal, k, gain)
        out.ndcg[k] = dcg / idcg if idcg > 0 else 0.0
    return out


def mean_metrics(
    per_query: Sequence[QueryMetrics], ks: Iterable[int]
) -> dict[str, dict[int, float]]:
    """Means over queries: ``{"recall": {k: mean}, ..., "mrr": {0: value}}``."""
    n = max(len(per_query), 1)
    out: dict[str, dict[int, float]] = {}
    for name in ("recall", "precision", "hit", "ndcg"):
        out[name] = {k: sum(getattr(q, name)[k] for q in per_query) / n for k in ks}
    out["mrr"] = {0: sum(q.rr for q in per_query) / n}
    return out
