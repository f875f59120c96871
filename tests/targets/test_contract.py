"""One contract, every adapter, real engines, real embeddings.

The oracle for exact search is an independent numpy brute force over the vectors the
target holds (for a PQ index, the decoded vectors it really compares against).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from ragmon.monitor.errors import DimensionMismatch, TargetError
from ragmon.monitor.targets import VectorTarget

K = 10
Data = Any  # tests/targets/conftest.py: Data


def oracle_topk(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions, similarities) of the true top-k, best first: unit queries against the
    stored vectors as they are (unit for every index here but PQ, whose decoded vectors the
    index really compares against)."""
    v = vectors
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    sims = q @ v.T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sims, order, axis=1)


def stored(target: VectorTarget, data: Data) -> np.ndarray:
    if not target.supports_fetch:
        return data.vectors
    got = target.fetch(data.ids)
    assert got.ids == data.ids and got.missing == []
    return got.vectors


def test_count_and_describe(target: VectorTarget, data: Data) -> None:
    desc = target.describe()
    assert desc.dimension == 384
    assert desc.metric in ("cosine", "ip")
    assert desc.engine == target.describe().engine
    assert desc.fingerprint() == target.describe().fingerprint()
    json.dumps({"params": desc.params, "stats": desc.stats})  # stored with every run
    if target.supports_fetch:
        assert target.count() == desc.count == len(data.ids)


def test_exact_search_matches_numpy_oracle(target: VectorTarget, data: Data) -> None:
    result = target.exact_search(data.queries, K)
    assert result.exact and result.exact_mode in ("engine", "stream")
    assert len(result.ids) == len(result.latencies) == len(data.queries)
    vectors = stored(target, data)
    positions, sims = oracle_topk(vectors, data.queries, K)
    lookup = {i: n for n, i in enumerate(data.ids)}
    v = vectors
    for row, (ids, kth) in enumerate(zip(result.ids, sims[:, -1], strict=True)):
        assert len(ids) == K
        got = v[[lookup[i] for i in ids]] @ (data.queries[row] / np.linalg.norm(data.queries[row]))
        # tie-tolerant: every returned item is at least as close as the true k-th
        assert (got >= kth - 1e-4).all(), (row, got, kth)
        assert set(ids) >= {data.ids[p] for p, s in zip(positions[row], sims[row], strict=True)
                            if s > kth + 1e-4}


def test_live_search_agrees_with_exact_on_a_healthy_index(target: VectorTarget,
                                                          data: Data) -> None:
    live = target.search(data.queries, K)
    exact = target.exact_search(data.queries, K)
    assert not live.exact or target.describe().params.get("mode") == "local"
    assert all(len(ids) == K for ids in live.ids)
    assert all(lat > 0 for lat in live.latencies) and len(live.latencies) == len(data.queries)
    recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(live.ids, exact.ids, strict=True)])
    assert recall >= 0.85


def test_fetch_returns_stored_vectors_and_names_missing_ids(target: VectorTarget,
                                                            data: Data) -> None:
    if not target.supports_fetch:
        with pytest.raises(TargetError, match="cannot fetch stored vectors"):
            target.fetch(["1"])
        return
    want = [data.ids[5], "999999", data.ids[0], "not-an-id"]
    got = target.fetch(want)
    assert got.ids == [data.ids[5], data.ids[0]]
    assert got.missing == ["999999", "not-an-id"]
    tolerance = 0.2 if target.name == "faiss-pq" else 1e-5  # PQ stores codes, not vectors
    np.testing.assert_allclose(got.vectors, data.vectors[[5, 0]], atol=tolerance)
    assert target.fetch([]).vectors.shape == (0, 384)


def test_sample_is_uniform_subset_and_deterministic(target: VectorTarget, data: Data) -> None:
    if not target.supports_fetch:
        with pytest.raises(TargetError, match="cannot sample"):
            target.sample(5, 0)
        return
    a, b, c = target.sample(50, 1), target.sample(50, 1), target.sample(50, 2)
    assert a.ids == b.ids and a.ids != c.ids
    assert len(set(a.ids)) == 50 and set(a.ids) <= set(data.ids)
    assert a.vectors.shape == (50, 384)
    assert len(target.sample(10**6, 0).ids) == len(data.ids)


def test_k_larger_than_the_index_gives_a_shortfall_not_an_error(target: VectorTarget,
                                                                  data: Data) -> None:
    k = len(data.ids) + 5
    exact = target.exact_search(data.queries[:1], k)
    assert len(exact.ids[0]) == len(data.ids)
    live = target.search(data.queries[:1], k)
    assert 0 < len(live.ids[0]) <= len(data.ids)
    assert len(live.scores[0]) == len(live.ids[0])


def test_filter_restricts_results(target: VectorTarget, data: Data) -> None:
    columns = getattr(target.config, "filter_columns", [])
    if not columns:
        with pytest.raises(TargetError, match="filter"):
            target.search(data.queries[:1], K, {"topic": "json"})
        return
    topic = data.topics[0]
    members = {i for i, t in zip(data.ids, data.topics, strict=True) if t == topic}
    exact = target.exact_search(data.queries[:3], K, {"topic": topic})
    assert all(len(ids) == min(K, len(members)) and set(ids) <= members for ids in exact.ids)
    # live search may fall short under a filter (IVF lists without a member): a subset
    live = target.search(data.queries[:3], K, {"topic": topic})
    assert all(set(ids) <= members for ids in live.ids)
    with pytest.raises(TargetError, match=r"cannot filter on \['colour'\]; filterable columns: "
                       "topic"):
        target.search(data.queries[:1], K, {"colour": "red"})


def test_dimension_mismatch_names_both_numbers(target: VectorTarget, data: Data) -> None:
    with pytest.raises(DimensionMismatch, match="query vectors have dimension 383 but the index "
                       "has dimension 384"):
        target.search(data.queries[:2, :383], K)
    with pytest.raises(DimensionMismatch, match="383"):
        target.exact_search(data.queries[:2, :383], K)


@pytest.mark.parametrize(("bad", "message"), [
    (np.nan, r"query vectors \[1\] contain NaN or Inf"),
    (np.inf, r"query vectors \[1\] contain NaN or Inf"),
    (0.0, r"query vectors \[1\] are all zeros; they have no direction to search by"),
])
def test_bad_query_vectors_are_refused(target: VectorTarget, data: Data, bad: float,
                                       message: str) -> None:
    queries = data.queries[:3].copy()
    if bad == 0.0:
        queries[1] = 0.0
    else:
        queries[1, 7] = bad
    with pytest.raises(TargetError, match=message):
        target.search(queries, K)
    with pytest.raises(TargetError, match=message):
        target.exact_search(queries, K)


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_k_must_be_a_positive_integer(target: VectorTarget, data: Data, k: object) -> None:
    with pytest.raises(TargetError, match=f"k must be a positive integer, got {k!r}"):
        target.search(data.queries[:1], k)  # type: ignore[arg-type]
