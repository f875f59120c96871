"""Exact top-k over every stored vector, in one streaming pass for all queries.

Ground truth is the exact top-k over the whole index (or the whole filtered subset), never
over a sample of it. Stored vectors arrive in blocks (pages read from a store, decoded
inverted lists, slices of a flat array); each block is searched with ``faiss.knn`` for all
queries at once and merged into a running heap, so memory is one block plus the heaps,
whatever the size of the index. ``exact_memory`` caps one block's size, not the number of
vectors searched.

A time budget bounds the pass: :class:`Budget` projects the whole pass from the work done
so far and raises :class:`GroundTruthBudgetExceeded` when it cannot finish in time.

Engines with an exact mode of their own (a forced sequential scan, a flat query) scan the
index once per query; streaming reads it once for all of them. :func:`choose_mode` picks
the cheaper one from an estimated cost (see :class:`Costs`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from ragmon.monitor.errors import GroundTruthBudgetExceeded
from ragmon.monitor.targets._helpers import normalised
from ragmon.monitor.targets.abc import ExactMode, Metric, SearchResult

DEFAULT_BLOCK = 64 << 20  # one block of float32 vectors: ~43,000 vectors at 384-d
#: How a target is told to compute ground truth: by estimated cost, or forced.
ModeChoice = Literal["auto", "engine", "stream"]


def rows_within(block: int, dimension: int) -> int:
    """How many float32 vectors of ``dimension`` fit in ``block`` bytes (at least one)."""
    return max(1, block // (4 * max(dimension, 1)))


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
        """Ids and scores per query, best first; fewer than k when fewer vectors were added.
        Ids are looked up block by block (a block's ``take``, when it has one, maps all its
        positions at once), not one bisection per result."""
        self._heap.finalize()
        dist, pos = self._heap.D, self._heap.I
        if len(pos) == 0:
            return [], []
        keep = pos >= 0
        found = pos[keep]  # row-major: query by query, best first
        names = np.empty(len(found), dtype=object)
        block_of = np.searchsorted(np.asarray(self._offsets), found, side="right") - 1
        for block in np.unique(block_of).tolist():
            at = np.flatnonzero(block_of == block)
            lookup, relative = self._blocks[block], found[at] - self._offsets[block]
            take = getattr(lookup, "take", None)
            names[at] = take(relative) if take is not None else \
                [lookup[p] for p in relative.tolist()]
        flat: list[str] = names.tolist()
        ends = np.cumsum(keep.sum(axis=1)).tolist()
        out_ids = [flat[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]
        if keep.all():
            return out_ids, dist.astype(float).tolist()
        return out_ids, [row[m].astype(float).tolist() for row, m in zip(dist, keep, strict=True)]


def exact_topk(
    queries: np.ndarray,
    blocks: Iterable[tuple[Sequence[str], np.ndarray]],
    k: int,
    metric: Metric,
) -> tuple[list[list[str]], list[list[float]]]:
    """The exact top-k of ``queries`` over every vector in ``blocks``."""
    return ExactTopK(queries, k, metric).add_blocks(blocks).result()


class Budget:
    """A time budget for exact search of ``queries`` queries over ``total`` vectors.

    ``check`` is called after each block (or, in an engine's per-query mode, after each
    query) with the work done so far; it raises when the time spent already exceeds the
    budget, or when the pass projected from the rate so far cannot finish within it.
    """

    def __init__(self, target: str, seconds: float | None, *, total: int, queries: int):
        self.target, self.seconds = target, seconds
        self.total, self.queries = total, queries
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def check(self, scanned: int, queries: int | None = None) -> None:
        """``scanned`` vectors done for ``queries`` queries (default: all of them)."""
        if self.seconds is None:
            return
        done_queries = self.queries if queries is None else queries
        work, whole = scanned * done_queries, self.total * self.queries
        if work >= whole:
            return  # finished: the answer is kept even when it came in late
        elapsed = self.elapsed()
        if elapsed > self.seconds or (work > 0 and elapsed * whole / work > self.seconds):
            raise GroundTruthBudgetExceeded(
                self.target, budget=self.seconds, elapsed=elapsed, scanned=scanned,
                total=self.total, queries=done_queries)


Scale = Callable[[list[list[float]]], list[list[float]]]


def stream_exact(
    target: str,
    queries: np.ndarray,
    k: int,
    metric: Metric,
    blocks: Iterable[tuple[IdLookup, np.ndarray]],
    *,
    total: int,
    budget: float | None,
    scale: Scale | None = None,
) -> SearchResult:
    """Exact top-k over every vector ``blocks`` yields, within ``budget`` seconds. Scores
    are FAISS's (see ``ExactTopK``), or the engine's after ``scale``."""
    clock = Budget(target, budget, total=total, queries=len(queries))
    top = ExactTopK(queries, k, metric)
    source = iter(blocks)
    while (block := next(source, None)) is not None:
        top.add(*block)
        del block  # not held while the next block is read: memory is one block
        clock.check(top.scanned)
    ids_out, scores = top.result()
    per_query = clock.elapsed() / max(len(queries), 1)
    return SearchResult(ids_out, scale(scores) if scale else scores,
                        [per_query] * len(queries), exact=True, exact_mode="stream",
                        scanned=top.scanned)


def one_minus(scores: list[list[float]]) -> list[list[float]]:
    """Similarities as ``1 - similarity`` distances (Chroma's and LanceDB's scale)."""
    return [[1.0 - s for s in row] for row in scores]


def regroup(
    pages: Iterable[tuple[Sequence[str], np.ndarray]], rows: int
) -> Iterator[tuple[list[str], np.ndarray]]:
    """Pages of any size gathered into blocks of about ``rows`` vectors: fewer, larger
    matrix products than one per page, and never more than one block held at a time."""
    ids: list[str] = []
    parts: list[np.ndarray] = []
    held = 0
    for page_ids, vectors in pages:
        if len(page_ids) == 0:
            continue
        ids.extend(page_ids)
        parts.append(np.asarray(vectors, dtype=np.float32))
        held += len(page_ids)
        if held >= rows:
            yield ids, np.vstack(parts)
            ids, parts, held = [], [], 0
    if held:
        yield ids, np.vstack(parts)


@dataclass(frozen=True)
class Costs:
    """Seconds per unit of work of the two ways to compute ground truth, for one engine.

    Engine mode scans the index once per query: ``queries * (per_query + total *
    engine_row)``. Streaming reads every vector once and multiplies it with every query:
    ``setup + total * read_row + queries * total * dimension * multiply_add``. Streaming
    wins once there are more than about ``read_row / engine_row`` queries. The figures are
    measured on the engines (docs/benchmarks.md); only their ratio decides.
    """

    per_query: float
    engine_row: float
    read_row: float
    setup: float = 0.0
    #: one query-vector product per dimension in faiss.knn's BLAS: 1,000 queries over a
    #: million 384-d vectors took 73 s (bench/ground_truth.py)
    multiply_add: float = 1.9e-10

    def engine(self, queries: int, total: int) -> float:
        return queries * (self.per_query + total * self.engine_row)

    def stream(self, queries: int, total: int, dimension: int) -> float:
        return self.setup + total * (self.read_row + queries * dimension * self.multiply_add)


def choose_mode(choice: ModeChoice, costs: Costs, *, queries: int, total: int,
                dimension: int) -> ExactMode:
    """``choice`` when forced; otherwise the mode of least estimated cost."""
    if choice != "auto":
        return choice
    engine = costs.engine(queries, total)
    return "engine" if engine <= costs.stream(queries, total, dimension) else "stream"
