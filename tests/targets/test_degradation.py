"""A degraded index configuration must show up as lower agreement between the live top-k
and exact search, on the same real embeddings; a healthy one must not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragmon.monitor.targets import VectorTarget

K = 10


def agreement(target: VectorTarget, queries: np.ndarray) -> float:
    """Mean overlap of the live top-k with the exact top-k."""
    live = target.search(queries, K)
    exact = target.exact_search(queries, K)
    assert exact.exact and exact.exact_mode is not None
    return float(np.mean([len(set(a) & set(b)) / K
                          for a, b in zip(live.ids, exact.ids, strict=True)]))


@pytest.fixture(scope="module")
def weak_hnsw_file(data: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An HNSW graph with few links and a small build beam (M=4, efConstruction=16)."""
    import faiss

    index = faiss.IndexHNSWFlat(data.vectors.shape[1], 4, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 16
    index.add(data.vectors)
    path = tmp_path_factory.mktemp("weak") / "hnsw.faiss"
    faiss.write_index(index, str(path))
    return path


def test_faiss_hnsw_low_ef_search_lowers_agreement(build: Callable[..., VectorTarget],
                                                   weak_hnsw_file: Path, data: Any) -> None:
    raw = {"kind": "faiss", "path": str(weak_hnsw_file), "metric": "cosine"}
    low = build("low", {**raw, "ef_search": 8})
    high = build("high", {**raw, "ef_search": 256})
    assert low.describe().params["efSearch"] == 8
    assert low.describe().fingerprint() != high.describe().fingerprint()
    low_recall, high_recall = agreement(low, data.queries), agreement(high, data.queries)
    assert high_recall >= 0.95
    assert low_recall <= high_recall - 0.1, (low_recall, high_recall)


def test_faiss_ivf_one_probe_lowers_agreement(build: Callable[..., VectorTarget],
                                              faiss_files: dict[str, Path], data: Any) -> None:
    raw = {"kind": "faiss", "path": str(faiss_files["pq"]), "metric": "cosine"}
    one, many = build("one", {**raw, "nprobe": 1}), build("many", {**raw, "nprobe": 16})
    assert one.describe().params["nprobe"] == 1
    one_recall, many_recall = agreement(one, data.queries), agreement(many, data.queries)
    assert many_recall == 1.0  # every list probed: the decoded vectors, searched exhaustively
    assert one_recall < many_recall, one_recall


@pytest.fixture(scope="module")
def all_held_out_queries(real_vectors: np.ndarray) -> np.ndarray:
    """Every held-out chunk (every 20th, as in conftest's ``data``; none is indexed), not only
    the first N_QUERIES: about 130 queries."""
    vectors = np.asarray(real_vectors, dtype=np.float32)
    return vectors[np.arange(len(vectors)) % 20 == 0]


def test_pgvector_hnsw_low_ef_search_lowers_agreement(
    build: Callable[..., VectorTarget], pg_tables: str, data: Any,
    all_held_out_queries: np.ndarray,
) -> None:
    """pgvector's HNSW build cannot be seeded: it draws node levels from PostgreSQL's
    per-backend random state (pg_global_prng_state on PostgreSQL 15+, which setseed() does
    not touch), so the weak graph differs on every run. Over 52 rebuilds, the agreement at
    ef_search=10 ranged 0.70-0.94 on the first 40 queries (a gap to ef_search=400 as small
    as 0.06) but 0.77-0.89 on all ~130 held-out queries, with ef_search=400 at 0.99-1.0 (gap
    0.10-0.21); so all of them are measured, and the assertion keeps a margin."""
    queries = all_held_out_queries
    raw = {"kind": "pgvector", "url": pg_tables, "table": "docs_weak"}
    low, high = build("low", {**raw, "ef_search": 10}), build("high", {**raw, "ef_search": 400})
    try:
        assert low.describe().params["ef_search"] == 10
        low_recall, high_recall = agreement(low, queries), agreement(high, queries)
        # exact search really scans: it equals numpy even where the weak graph misses
        sims = queries @ data.vectors.T
        kth = -np.sort(-sims, axis=1)[:, K - 1]
        exact = low.exact_search(queries, K).ids
        for row, ids in enumerate(exact):  # tie-tolerant: nothing below the true k-th
            assert len(ids) == K and (sims[row, [int(i) for i in ids]] >= kth[row] - 1e-5).all()
    finally:
        low.close()
        high.close()
    # The measured gap (0.10-0.21, mean 0.16, sd 0.025) against a bound about 4 sd below it.
    assert high_recall >= 0.95, high_recall
    assert low_recall <= high_recall - 0.06, (low_recall, high_recall)


def test_lancedb_ivf_pq_one_probe_lowers_agreement(build: Callable[..., VectorTarget],
                                                   lance_dir: Path, data: Any) -> None:
    raw = {"kind": "lancedb", "uri": str(lance_dir), "table": "docs_weak"}
    one = build("one", {**raw, "nprobes": 1})
    refined = build("refined", {**raw, "nprobes": 32, "refine_factor": 20})
    assert one.describe().params["index_type"] == "IVF_PQ"
    one_recall, refined_recall = agreement(one, data.queries), agreement(refined, data.queries)
    assert one_recall <= 0.8, one_recall
    assert refined_recall >= one_recall + 0.2, (one_recall, refined_recall)


def test_chroma_weak_graph_lowers_agreement(build: Callable[..., VectorTarget],
                                            chroma_dir: Path, data: Any) -> None:
    raw = {"kind": "chroma", "path": str(chroma_dir)}
    weak = build("weak", {**raw, "collection": "docs_weak"})
    default = build("default", {**raw, "collection": "docs"})
    assert weak.describe().params["hnsw"]["max_neighbors"] == 4
    weak_recall, default_recall = agreement(weak, data.queries), agreement(default, data.queries)
    assert default_recall >= 0.9
    assert weak_recall <= default_recall - 0.1, (weak_recall, default_recall)


def test_qdrant_local_mode_is_always_exact(build: Callable[..., VectorTarget],
                                           qdrant_dir: Path, data: Any) -> None:
    """Qdrant local mode has no HNSW: it cannot show degradation, and says so."""
    target = build("q", {"kind": "qdrant", "path": str(qdrant_dir), "collection": "docs",
                         "hnsw_ef": 1})
    try:
        assert target.describe().params["mode"] == "local"
        live = target.search(data.queries, K)
        assert live.exact
        assert live.ids == target.exact_search(data.queries, K).ids
    finally:
        target.close()
