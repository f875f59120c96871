"""The search phase of a recall run: live and exact top-k for every golden query.

Queries are searched in batches, grouped by filter. The whole run fails only when the
target is unavailable; a query whose batch the engine refused is marked ``failed`` and one
that did not fit in the time budget ``timeout``; both score 0 (never dropped).

When the golden set judges documents (:mod:`probes.recall.documents`), a query whose top k
chunks hold fewer than k distinct documents is searched again, twice as deep each time, up
to ``max_depth`` x k chunks, live and exact alike; a query still short of k documents is a
document shortfall, reported by the probe. Latencies are those of the first, k-deep search.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ragmon.monitor.errors import TargetError, TargetUnavailable
from ragmon.monitor.probe import Deadline
from ragmon.monitor.targets.abc import SearchResult, VectorTarget
from ragmon.probes.recall.documents import DocumentMap
from ragmon.probes.recall.golden import GoldenQuery

#: Share of the time budget kept for scoring, comparison and storing after the searches.
RESERVE = 0.15


@dataclass
class Searched:
    """Per-query outcome, index-aligned with the golden queries."""

    status: list[str]
    error: list[str | None]
    live_ids: list[list[str]]
    live_scores: list[list[float]]
    exact_ids: list[list[str]]
    exact_scores: list[list[float]]
    latencies: list[float] = field(default_factory=list)
    ground_truth_sample: int | None = None


def search_all(
    target: VectorTarget, queries: list[GoldenQuery], vectors: np.ndarray | None, k: int,
    batch: int, deadline: Deadline, exact: bool, documents: DocumentMap | None = None,
) -> Searched:
    """``vectors`` is None only for a text-input target without an embedder; with
    ``documents``, lists are deepened until they hold k documents (see above)."""
    n = len(queries)
    if vectors is None:
        vectors = np.zeros((n, 1), dtype=np.float32)  # not read: the engine embeds texts
    out = Searched(["ok"] * n, [None] * n, [[] for _ in range(n)], [[] for _ in range(n)],
                   [[] for _ in range(n)], [[] for _ in range(n)])
    groups: dict[str, list[int]] = {}
    for i, q in enumerate(queries):
        groups.setdefault(json.dumps(q.filter, sort_keys=True), []).append(i)
    reserve = deadline.seconds * RESERVE
    for key, members in groups.items():
        filt = json.loads(key)
        for start in range(0, len(members), batch):
            rows = members[start:start + batch]
            if deadline.remaining() <= reserve:
                _mark(out, rows, "timeout", "not searched: the probe ran out of time")
                continue
            deeper = None if documents is None else _Deepen(target, documents, deadline, reserve)
            _search_batch(target, queries, vectors, rows, filt, k, exact, out, deeper)
    return out


def _search_batch(
    target: VectorTarget, queries: list[GoldenQuery], vectors: np.ndarray, rows: list[int],
    filt: dict[str, Any] | None, k: int, exact: bool, out: Searched,
    deeper: _Deepen | None = None,
) -> None:
    texts = [queries[i].text or "" for i in rows]
    try:
        live = target.search(vectors[rows], k, filt, texts=texts)
        truth = target.exact_search(vectors[rows], k, filt, texts=texts) if exact else None
        if deeper is not None:
            deeper(target.search, live, vectors[rows], filt, texts, k)
            if truth is not None:
                deeper(target.exact_search, truth, vectors[rows], filt, texts, k)
    except TargetUnavailable:
        raise
    except TargetError as exc:
        _mark(out, rows, "failed", str(exc))
        return
    for j, i in enumerate(rows):
        out.live_ids[i], out.live_scores[i] = list(live.ids[j]), list(live.scores[j])
        out.latencies.append(float(live.latencies[j]))
        if truth is not None:
            out.exact_ids[i], out.exact_scores[i] = list(truth.ids[j]), list(truth.scores[j])
    if truth is not None and truth.ground_truth_sample is not None:
        out.ground_truth_sample = truth.ground_truth_sample


def _mark(out: Searched, rows: list[int], status: str, error: str) -> None:
    for i in rows:
        out.status[i], out.error[i] = status, error


class _Deepen:
    """Searches again, deeper, the queries whose chunks hold fewer than k documents."""

    def __init__(self, target: VectorTarget, documents: DocumentMap, deadline: Deadline,
                 reserve: float):
        self.target, self.documents = target, documents
        self.deadline, self.reserve = deadline, reserve

    def __call__(self, search: Callable[..., SearchResult], result: SearchResult,
                 vectors: np.ndarray, filt: dict[str, Any] | None, texts: list[str],
                 k: int) -> None:
        docs = self.documents
        docs.resolve(self.target, (c for ids in result.ids for c in ids))
        depth, cap = k, k * docs.config.max_depth
        while depth < cap and self.deadline.remaining() > self.reserve:
            # a list shorter than the depth asked for is all the engine has
            short = [j for j, ids in enumerate(result.ids)
                     if len(ids) >= depth and docs.distinct(ids) < k]
            if not short:
                return
            depth = min(depth * 2, cap)
            again = search(vectors[short], depth, filt, texts=[texts[j] for j in short])
            docs.resolve(self.target, (c for ids in again.ids for c in ids))
            for n, j in enumerate(short):
                result.ids[j], result.scores[j] = list(again.ids[n]), list(again.scores[n])
