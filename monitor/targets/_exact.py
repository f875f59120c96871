"""Client-side exact search: flat FAISS search over vectors read back from a store, for
engines without an exact mode (Chroma) and for FAISS indexes whose storage is not flat.

Vectors arrive in blocks (pages read from the store, or one array) and each block's top-k is
merged into a running heap, so memory is one block plus the heaps. The memory budget caps
how many vectors a ground truth may be computed over: when the index holds more, the
caller searches a uniform sample of ``rows_within(budget, dimension)`` vectors and the
result says so (``SearchResult.ground_truth_sample``) instead of pretending to be exact.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import numpy as np

from ragmon.monitor.targets._helpers import normalised
from ragmon.monitor.targets.abc import Metric

DEFAULT_BUDGET = 1 << 30  # 1 GiB of float32 vectors: ~700k vectors at 384-d


def rows_within(budget: int, dimension: int) -> int:
    """How many float32 vectors of ``dimension`` fit in ``budget`` bytes."""
    return max(1, budget // (4 * max(dimension, 1)))


class IdLookup(Protocol):
    """Ids of a block's rows by position: a list, or a lazy lookup over a large index."""

    def __len__(self) -> int: ...

    def __getitem__(self, position: int, /) -> str: ...


class ExactTopK:
    """Running exact top-k of a batch of queries over vectors added block by block.

    Scores are FAISS's: inner product for ``ip``, cosine similarity for ``cosine`` (both
    sides normalised), squared L2 distance for ``l2`` (smaller is better).
    """

    def __init__(self, queries: np.ndarray, k: int, metric: Metric):
        import faiss

        self._faiss = faiss
        self.metric = metric
        self.k = k
        self.queries = normalised(queries) if metric == "cosine" else queries
        self._faiss_metric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
        self._heap = faiss.ResultHeap(len(queries), k, keep_max=metric != "l2")
        self._blocks: list[IdLookup] = []
        self._offsets: list[int] = []
        self.scanned = 0

    def add(self, ids: IdLookup, vectors: np.ndarray) -> None:
        """Merge one block of stored vectors (row i has id ``ids[i]``; any sequence works,
        so a large index can pass a lazy id lookup instead of a list of strings)."""
        if len(ids) == 0:
            return
        block = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.metric == "cosine":
            block = normalised(block)
        k = min(self.k, len(ids))
        dist, pos = self._faiss.knn(self.queries, block, k, metric=self._faiss_metric)
        pos = np.where(pos >= 0, pos + self.scanned, -1)
        if k < self.k:  # the heap expects k columns; pad with "no result"
            fill = -np.inf if self.metric != "l2" else np.inf
            pad = self.k - k
            dist = np.hstack([dist, np.full((len(dist), pad), fill, dtype=np.float32)])
            pos = np.hstack([pos, np.full((len(pos), pad), -1, dtype=np.int64)])
        self._heap.add_result(np.ascontiguousarray(dist), np.ascontiguousarray(pos))
        self._blocks.append(ids)
        self._offsets.append(self.scanned)
        self.scanned += len(ids)

    def add_blocks(self, blocks: Iterable[tuple[IdLookup, np.ndarray]]) -> ExactTopK:
        for ids, vectors in blocks:
            self.add(ids, vectors)
        return self

    def result(self) -> tuple[list[list[str]], list[list[float]]]:
        """Ids and scores per query, best first; fewer than k when fewer vectors were added."""
        self._heap.finalize()
        out_ids: list[list[str]] = []
        out_scores: list[list[float]] = []
        for dist_row, pos_row in zip(self._heap.D, self._heap.I, strict=True):
            keep = pos_row >= 0
            out_ids.append([self._id_at(p) for p in pos_row[keep].tolist()])
            out_scores.append(dist_row[keep].astype(float).tolist())
        return out_ids, out_scores

    def _id_at(self, position: int) -> str:
        block = bisect_right(self._offsets, position) - 1
        return self._blocks[block][position - self._offsets[block]]


def exact_topk(
    queries: np.ndarray,
    blocks: Iterable[tuple[Sequence[str], np.ndarray]],
    k: int,
    metric: Metric,
) -> tuple[list[list[str]], list[list[float]]]:
    """The exact top-k of ``queries`` over every vector in ``blocks``."""
    return ExactTopK(queries, k, metric).add_blocks(blocks).result()


def exact_over_store(
    queries: np.ndarray,
    k: int,
    metric: Metric,
    *,
    total: int,
    budget: int,
    dimension: int,
    pages: Callable[[], Iterable[tuple[Sequence[str], np.ndarray]]],
    sample: Callable[[int], tuple[Sequence[str], np.ndarray]],
) -> tuple[list[list[str]], list[list[float]], int | None]:
    """Exact top-k over a store's vectors read back client-side, within a memory budget.

    When all ``total`` vectors fit in ``budget`` bytes they are read page by page through
    ``pages()`` and searched block by block; otherwise ``sample(n)`` draws a uniform sample
    that fits and the third value returned is its size (``None`` when the whole index was
    searched), so the caller can say that the ground truth comes from a sample.
    """
    limit = rows_within(budget, dimension)
    top = ExactTopK(queries, k, metric)
    if total <= limit:
        top.add_blocks(pages())
        ids, scores = top.result()
        return ids, scores, None
    sample_ids, vectors = sample(limit)
    top.add(sample_ids, vectors)
    ids, scores = top.result()
    return ids, scores, len(sample_ids)
