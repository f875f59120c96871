"""Client-side exact search: block-wise merging equals one flat search, for every metric,
and above the memory budget the result is computed over a sample and says how big."""

from __future__ import annotations

import numpy as np
import pytest

from ragmon.monitor.targets._exact import ExactTopK, exact_over_store, rows_within


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


def test_over_budget_the_ground_truth_is_a_sample_and_says_so() -> None:
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(1000, 8)).astype(np.float32)
    ids = [str(i) for i in range(1000)]
    asked: list[int] = []

    def pages():  # type: ignore[no-untyped-def]
        for start in range(0, 1000, 128):
            yield ids[start:start + 128], vectors[start:start + 128]

    def sample(n: int) -> tuple[list[str], np.ndarray]:
        asked.append(n)
        pick = np.sort(rng.choice(1000, n, replace=False))
        return [ids[i] for i in pick], vectors[pick]

    queries = rng.normal(size=(3, 8)).astype(np.float32)
    budget = 200 * 8 * 4
    assert rows_within(budget, 8) == 200
    got, _, sampled = exact_over_store(queries, 5, "l2", total=1000, budget=budget,
                                       dimension=8, pages=pages, sample=sample)
    assert sampled == 200 and asked == [200] and all(len(r) == 5 for r in got)
    whole, _, none = exact_over_store(queries, 5, "l2", total=1000, budget=1 << 20,
                                      dimension=8, pages=pages, sample=sample)
    assert none is None and asked == [200]
    assert whole == [[str(i) for i in row] for row in numpy_topk(queries, vectors, 5, "l2")]
