"""Client-side exact search: block-wise merging equals one flat search, for every metric;
pages regroup into blocks and every vector is searched; the time budget projects the pass;
the mode of least estimated cost is chosen."""

from __future__ import annotations

import numpy as np
import pytest

from ragmon.monitor.errors import GroundTruthBudgetExceeded
from ragmon.monitor.targets._exact import (
    Budget,
    Costs,
    ExactTopK,
    choose_mode,
    regroup,
    rows_within,
    stream_exact,
)


def numpy_topk(queries: np.ndarray, vectors: np.ndarray, k: int, metric: str) -> np.ndarray:
    if metric == "l2":
        return np.argsort(((queries[:, None] - vectors[None]) ** 2).sum(-1), axis=1)[:, :k]
    if metric == "cosine":
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.argsort(-(queries @ vectors.T), axis=1)[:, :k]


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
@pytest.mark.parametrize("block", [7, 100, 1000])
def test_blocks_merge_to_the_flat_answer(metric: str, block: int) -> None:
    rng = np.random.default_rng(11)
    vectors = rng.normal(size=(600, 12)).astype(np.float32) * rng.uniform(0.5, 2, (600, 1))
    queries = rng.normal(size=(9, 12)).astype(np.float32)
    ids = [f"v{i}" for i in range(len(vectors))]
    top = ExactTopK(queries, 10, metric)  # type: ignore[arg-type]
    for start in range(0, len(vectors), block):
        top.add(ids[start:start + block], vectors[start:start + block])
    got, scores = top.result()
    want = numpy_topk(queries, vectors, 10, metric)
    assert got == [[f"v{i}" for i in row] for row in want]
    assert all(len(row) == 10 for row in scores)
    if metric == "l2":  # squared distances, ascending
        assert all(row == sorted(row) for row in scores)
    else:
        assert all(row == sorted(row, reverse=True) for row in scores)


def test_fewer_vectors_than_k_gives_a_shortfall() -> None:
    top = ExactTopK(np.ones((2, 3), np.float32), 5, "ip")
    top.add(["a", "b"], np.eye(3, dtype=np.float32)[:2])
    ids, scores = top.result()
    assert [sorted(r) for r in ids] == [["a", "b"], ["a", "b"]]
    assert all(len(r) == 2 for r in scores)


def test_no_queries_or_no_vectors_give_empty_answers() -> None:
    top = ExactTopK(np.ones((0, 3), np.float32), 5, "ip")
    top.add(["a", "b"], np.eye(3, dtype=np.float32)[:2])
    assert top.result() == ([], [])
    assert ExactTopK(np.ones((2, 3), np.float32), 5, "l2").result() == ([[], []], [[], []])


def test_pages_regroup_into_blocks_and_every_vector_is_searched() -> None:
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(1000, 8)).astype(np.float32)
    ids = [str(i) for i in range(1000)]
    pages = [(ids[s:s + 37], vectors[s:s + 37]) for s in range(0, 1000, 37)]
    blocks = list(regroup(iter(pages), rows_within(200 * 8 * 4, 8)))
    assert [len(b[0]) for b in blocks] == [222] * 4 + [112]  # whole pages, ~200 rows each
    queries = rng.normal(size=(3, 8)).astype(np.float32)
    got = stream_exact("t", queries, 5, "l2", iter(blocks), total=1000, budget=None)
    assert (got.scanned, got.exact, got.exact_mode) == (1000, True, "stream")
    assert got.ids == [[str(i) for i in row] for row in numpy_topk(queries, vectors, 5, "l2")]


def test_budget_projects_the_pass_and_raises_with_how_far_it_got() -> None:
    clock = Budget("t", 10.0, total=1000, queries=4)
    clock.start -= 1.0  # one second spent
    clock.check(200)  # 1 s for a fifth: 5 s projected, within 10
    with pytest.raises(GroundTruthBudgetExceeded) as caught:
        clock.check(50)  # 1 s for a twentieth: 20 s projected
    err = caught.value
    assert (err.scanned, err.total, err.queries, err.budget) == (50, 1000, 4, 10.0)
    assert err.elapsed >= 1.0
    clock.check(1000)  # finished: the answer is kept even late
    clock.start -= 20.0
    with pytest.raises(GroundTruthBudgetExceeded):
        clock.check(999)  # past the budget itself
    engine = Budget("t", 10.0, total=1000, queries=4)  # per query: 1 of 4 queries done
    engine.start -= 3.0
    with pytest.raises(GroundTruthBudgetExceeded) as per_query:
        engine.check(1000, queries=1)  # 12 s projected
    assert per_query.value.queries == 1
    Budget("t", None, total=1000, queries=4).check(1)  # no budget: never raises


def test_mode_of_least_estimated_cost() -> None:
    costs = Costs(per_query=1e-3, engine_row=1e-7, read_row=2e-6)
    # streaming pays off after about read_row / engine_row = 20 queries
    assert choose_mode("auto", costs, queries=5, total=10**6, dimension=384) == "engine"
    assert choose_mode("auto", costs, queries=100, total=10**6, dimension=384) == "stream"
    assert choose_mode("engine", costs, queries=100, total=10**6, dimension=384) == "engine"
    assert choose_mode("stream", costs, queries=1, total=10, dimension=384) == "stream"
