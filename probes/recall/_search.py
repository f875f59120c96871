"""The search phase of a recall run: live top-k for every golden query, exact top-k (ground
truth) for the queries chosen for it.

Live search runs in batches, grouped by filter. The whole run fails only when the target is
unavailable to live search; a query whose batch the engine refused is marked ``failed`` and
one that did not fit in the time budget ``timeout``; both score 0 (never dropped).

Ground truth is one ``exact_search`` call per filter group over all the chosen queries (a
streaming target reads the index once for all of them), bounded by the ground-truth budget.
Ground truth that fails, for its budget or an engine error, never costs the live
measurement: the run keeps its live results and says why fidelity was not measured
(:class:`GroundTruth`).

When the golden set judges documents (:mod:`probes.recall.documents`), a query whose top k
chunks hold fewer than k distinct documents is searched again, twice as deep each time, up
to ``max_depth`` x k chunks, live and exact alike; a query still short of k documents is a
document shortfall, reported by the probe. Latencies are those of the first, k-deep search.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ragmon.monitor.errors import GroundTruthBudgetExceeded, TargetError, TargetUnavailable
from ragmon.monitor.probe import Deadline
from ragmon.monitor.targets.abc import SearchResult, VectorTarget
from ragmon.probes.recall.documents import DocumentMap
from ragmon.probes.recall.golden import GoldenQuery

#: Share of the time budget kept for scoring, comparison and storing after the searches.
RESERVE = 0.15


@dataclass
class GroundTruth:
    """What the exact side of a run did: how many queries it measured, in how long and how
    (``mode``, ``scanned``), or why it measured none (``skipped``: ``"budget"`` or
    ``"error"``, with ``error``). ``projected`` is the seconds the asked queries would have
    needed, when the target said so in its ``GroundTruthBudgetExceeded``."""

    asked: int = 0
    queries: int = 0
    seconds: float = 0.0
    mode: str | None = None
    scanned: int | None = None
    skipped: str | None = None
    error: str | None = None
    projected: float | None = None

    def summary(self) -> dict[str, Any]:
        return {"asked": self.asked, "queries": self.queries, "seconds": self.seconds,
                "mode": self.mode, "scanned": self.scanned, "skipped": self.skipped,
                "error": self.error, "projected": self.projected}


@dataclass
class Searched:
    """Per-query outcome, index-aligned with the golden queries; ``truth[i]`` is True when
    query i has an exact side this run (chosen for ground truth, and it did not fail)."""

    status: list[str]
    error: list[str | None]
    live_ids: list[list[str]]
    live_scores: list[list[float]]
    exact_ids: list[list[str]]
    exact_scores: list[list[float]]
    latencies: list[float] = field(default_factory=list)
    truth: list[bool] = field(default_factory=list)
    ground_truth: GroundTruth = field(default_factory=GroundTruth)


def _groups(queries: list[GoldenQuery], members: Sequence[int]) -> dict[str, list[int]]:
    """The queries by filter (its canonical JSON), in order; most have none."""
    groups: dict[str, list[int]] = {}
    for i in members:
        filt = queries[i].filter
        key = "null" if filt is None else json.dumps(filt, sort_keys=True)
        groups.setdefault(key, []).append(i)
    return groups


def search_all(
    target: VectorTarget, queries: list[GoldenQuery], vectors: np.ndarray | None, k: int,
    batch: int, deadline: Deadline, documents: DocumentMap | None = None,
) -> tuple[Searched, np.ndarray]:
    """Live search of every query. ``vectors`` is None only for a text-input target without
    an embedder; with ``documents``, lists are deepened until they hold k documents (see
    above). Returns the outcome and the query vectors searched with."""
    n = len(queries)
    if vectors is None:
        vectors = np.zeros((n, 1), dtype=np.float32)  # not read: the engine embeds texts
    empty: Callable[[], list[list[Any]]] = lambda: [[] for _ in range(n)]  # noqa: E731
    out = Searched(["ok"] * n, [None] * n, empty(), empty(), empty(), empty(),
                   truth=[False] * n)
    reserve = deadline.seconds * RESERVE
    for key, members in _groups(queries, range(n)).items():
        filt = json.loads(key)
        for start in range(0, len(members), batch):
            rows = members[start:start + batch]
            if deadline.remaining() <= reserve:
                _mark(out, rows, "timeout", "not searched: the probe ran out of time")
                continue
            texts = [queries[i].text or "" for i in rows]
            try:
                live = target.search(vectors[rows], k, filt, texts=texts)
                if documents is not None:
                    _Deepen(target, documents, deadline, reserve)(
                        target.search, live, vectors[rows], filt, texts, k)
            except TargetUnavailable:
                raise
            except TargetError as exc:
                _mark(out, rows, "failed", str(exc))
                continue
            for j, i in enumerate(rows):
                out.live_ids[i], out.live_scores[i] = list(live.ids[j]), list(live.scores[j])
            out.latencies.extend(map(float, live.latencies))
    return out, vectors


def exact_all(
    target: VectorTarget, queries: list[GoldenQuery], vectors: np.ndarray, k: int,
    chosen: Sequence[int], budget: float, deadline: Deadline, out: Searched,
    documents: DocumentMap | None = None,
) -> GroundTruth:
    """Ground truth for the ``chosen`` queries that live search answered: one exact search
    per filter group, all within ``budget`` seconds (and the run's own deadline). On any
    failure no query keeps an exact side, and the returned record says why."""
    ok = [i for i in chosen if out.status[i] == "ok"]
    gt = out.ground_truth = GroundTruth(asked=len(ok))
    reserve = deadline.seconds * RESERVE
    start = time.perf_counter()

    def remaining() -> float:
        return min(budget - (time.perf_counter() - start), deadline.remaining() - reserve)

    results: dict[int, tuple[list[str], list[float]]] = {}
    try:
        for key, rows in _groups(queries, ok).items():
            left = remaining()
            if left <= 0:
                raise GroundTruthBudgetExceeded(
                    target.name, budget=budget, elapsed=time.perf_counter() - start,
                    scanned=0, total=0, queries=len(ok))
            filt, texts = json.loads(key), [queries[i].text or "" for i in rows]
            truth = target.exact_search(vectors[rows], k, filt, texts=texts, budget=left)
            if documents is not None:
                def exact(v: np.ndarray, depth: int, f: Any, *, texts: Sequence[str]) -> Any:
                    return target.exact_search(v, depth, f, texts=texts,
                                               budget=max(remaining(), 1e-3))

                _Deepen(target, documents, deadline, reserve)(exact, truth, vectors[rows],
                                                             filt, texts, k)
            gt.mode = truth.exact_mode or gt.mode
            if truth.scanned is not None:
                gt.scanned = (gt.scanned or 0) + truth.scanned
            for j, i in enumerate(rows):
                results[i] = (list(truth.ids[j]), list(truth.scores[j]))
    except GroundTruthBudgetExceeded as exc:
        gt.skipped, gt.error = "budget", str(exc)
        gt.seconds = time.perf_counter() - start
        if exc.scanned and exc.total and exc.queries:
            # ``scanned`` of ``total`` vectors for ``queries`` of the asked queries (a
            # per-query engine mode stops after some queries, a streaming pass mid-index)
            whole = exc.elapsed * exc.total / exc.scanned * gt.asked / exc.queries
            gt.projected = max(whole, budget)
        elif gt.asked:
            gt.projected = max(budget, gt.seconds)
        return gt
    except TargetError as exc:  # a timeout or refusal of the exact side alone
        gt.skipped, gt.error = "error", str(exc)
        gt.seconds = time.perf_counter() - start
        return gt
    gt.seconds = time.perf_counter() - start
    gt.queries = len(results)
    for i in chosen:  # a chosen query whose live search failed scores 0 on both sides
        out.truth[i] = True
        if i in results:
            out.exact_ids[i], out.exact_scores[i] = results[i]
    return gt


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
