"""Ground truth at scale: the exact top-k covers every vector of an index larger than one
block, equals a numpy brute force over the vectors the index compares against, and so
reads a degraded index's fidelity as low as it is. A time budget stops a pass that cannot
finish, saying how far it got."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragmon.monitor.errors import GroundTruthBudgetExceeded, TargetError
from ragmon.monitor.targets import VectorTarget

Build = Callable[..., VectorTarget]
N, DIM, CENTRES, K = 20_000, 32, 200, 10


def clustered(n: int, seed: int, centres: np.ndarray) -> np.ndarray:
    """Vectors around shared cluster centres (topics), as in a real corpus."""
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(centres), size=n)
    noise = rng.standard_normal((n, centres.shape[1])).astype(np.float32) * 1.2
    return (centres[which] + noise).astype(np.float32)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """FAISS on one OpenMP thread here: on a loaded CI machine, threads that spin-wait for
    each other make these small searches take seconds instead of milliseconds."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


@pytest.fixture(scope="module")
def synthetic() -> tuple[np.ndarray, np.ndarray]:
    centres = np.random.default_rng(0).standard_normal((CENTRES, DIM)).astype(np.float32)
    return clustered(N, 1, centres), clustered(40, 2, centres)


def write_ivfpq(path: Path, vectors: np.ndarray) -> tuple[Path, np.ndarray]:
    """An IVF-PQ index written to ``path``, and its vectors as it decodes them (read with
    ``reconstruct_n``, not the inverted-list decoding exact search uses)."""
    import faiss

    index = faiss.index_factory(vectors.shape[1], "IVF64,PQ8x4")
    index.train(vectors[:8000])
    index.add(vectors)
    faiss.write_index(index, str(path))
    faiss.extract_index_ivf(index).make_direct_map()
    return path, index.reconstruct_n(0, index.ntotal)


@pytest.fixture(scope="module")
def ivfpq(synthetic: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    return write_ivfpq(tmp_path_factory.mktemp("gt") / "ivfpq.faiss", synthetic[0])


def brute_force(queries: np.ndarray, stored: np.ndarray, k: int) -> np.ndarray:
    """Squared L2 distances of every query to every stored vector, in float64."""
    q, v = queries.astype(np.float64), stored.astype(np.float64)
    return (q * q).sum(1)[:, None] - 2 * q @ v.T + (v * v).sum(1)[None, :]


def tie_tolerant_recall(live: list[list[str]], truth: list[list[str]], dist: np.ndarray,
                        k: int, eps: float = 1e-4) -> float:
    """Mean share of live top-k within the truth's k-th distance (plus a relative eps)."""
    shares = []
    for row, live_ids, true_ids in zip(dist, live, truth, strict=True):
        kth = row[int(true_ids[k - 1])]
        bound = kth + eps * max(1.0, abs(kth))
        shares.append(sum(row[int(i)] <= bound for i in live_ids[:k]) / k)
    return float(np.mean(shares))


def test_streamed_ground_truth_of_a_large_ivfpq_index_reads_its_true_fidelity(
        build: Build, synthetic: Any, ivfpq: Any) -> None:
    queries, (path, decoded) = synthetic[1], ivfpq
    block = 64 << 10  # 512 vectors of 32-d per block: 40 blocks
    fidelity: dict[int, float] = {}
    oracle: dict[int, float] = {}
    for nprobe in (64, 1):  # every list probed, then a degraded setting
        target = build("pq", {"kind": "faiss", "path": str(path), "exact_memory": block,
                              "nprobe": nprobe})
        exact = target.exact_search(queries, K)
        assert exact.exact_mode == "stream" and exact.scanned == N
        assert target.describe().ground_truth_of == "decoded"
        dist = brute_force(queries, decoded, K)
        best = np.argsort(dist, axis=1, kind="stable")[:, :K]
        # the streamed top-k equals the brute force, ties allowed: the same k-th distance
        # and every returned id within it
        want_kth = np.take_along_axis(dist, best[:, K - 1:], axis=1)[:, 0]
        got_kth = np.array([row[int(ids[K - 1])] for row, ids in zip(dist, exact.ids,
                                                                     strict=True)])
        np.testing.assert_allclose(got_kth, want_kth, rtol=1e-5, atol=1e-5)
        assert tie_tolerant_recall(exact.ids, [[str(i) for i in r] for r in best], dist,
                                   K) == 1.0
        live = target.search(queries, K).ids
        fidelity[nprobe] = tie_tolerant_recall(live, exact.ids, dist, K)
        oracle[nprobe] = tie_tolerant_recall(live, [[str(i) for i in r] for r in best],
                                             dist, K)
    assert fidelity == pytest.approx(oracle, abs=1e-9)
    assert fidelity[64] > 0.95 and fidelity[1] < 0.7  # a degraded index reads degraded
    assert fidelity[64] - fidelity[1] == pytest.approx(oracle[64] - oracle[1], abs=1e-9)


def test_a_tiny_budget_stops_the_pass_and_says_how_far_it_got(build: Build, synthetic: Any,
                                                               ivfpq: Any) -> None:
    queries, (path, _) = synthetic[1], ivfpq
    target = build("pq", {"kind": "faiss", "path": str(path), "exact_memory": 16 << 10})
    with pytest.raises(GroundTruthBudgetExceeded) as caught:
        target.exact_search(queries, K, budget=1e-6)
    err = caught.value
    assert err.total == N and err.queries == len(queries)
    assert 0 < err.scanned < N and err.elapsed > 1e-6
    assert "budget of 1e-06s" in str(err) and "'pq'" in str(err)
    # a budget that the pass fits in changes nothing
    assert target.exact_search(queries, K, budget=60.0).ids == target.exact_search(
        queries, K).ids



def test_reference_vectors_measure_quantisation_error_that_decoded_ones_cannot(
        build: Build, synthetic: Any, ivfpq: Any, tmp_path: Path) -> None:
    """Against its decoded vectors an IVF-PQ index searching every list is perfect; against
    the originals it is not: ground truth over decoded vectors measures search error only.
    The numbers are in docs/adapters.md."""
    import faiss

    (vectors, queries), (path, decoded) = synthetic, ivfpq
    np.save(tmp_path / "originals.npy", vectors)
    flat = faiss.IndexFlatL2(DIM)
    flat.add(vectors)
    faiss.write_index(flat, str(tmp_path / "originals.faiss"))
    raw = {"kind": "faiss", "path": str(path), "nprobe": 64, "exact_memory": 64 << 10}
    on_decoded = build("pq", raw)
    live = on_decoded.search(queries, K).ids
    fidelity = {"decoded": tie_tolerant_recall(
        live, on_decoded.exact_search(queries, K).ids, brute_force(queries, decoded, K), K)}
    for source in ("originals.npy", "originals.faiss"):
        target = build("ref", {**raw, "ground_truth": {"vectors": str(tmp_path / source)}})
        assert target.describe().ground_truth_of == "reference"
        truth = target.exact_search(queries, K)
        assert truth.scanned == N
        dist = brute_force(queries, vectors, K)
        want = np.argsort(dist, axis=1)[:, :K]
        assert tie_tolerant_recall(truth.ids, [[str(i) for i in r] for r in want], dist,
                                   K) == 1.0
        fidelity[source] = tie_tolerant_recall(live, truth.ids, dist, K)
    assert fidelity["decoded"] == 1.0
    assert fidelity["originals.npy"] == fidelity["originals.faiss"] < 0.6
    wrong = tmp_path / "short.npy"
    np.save(wrong, vectors[:10])
    with pytest.raises(TargetError, match=r"ground_truth.vectors .*short.npy' holds 10 x 32 "
                       r"vectors but the index holds 20000 x 32"):
        build("bad", {**raw, "ground_truth": {"vectors": str(wrong)}}).exact_search(queries, K)



@pytest.mark.parametrize("factory", ["Flat", "HNSW16", "PQ8x4", "SQ8", "HNSW16,SQ8",
                                     "IVF16,Flat", "IVF16,SQ8", "PCA16,IVF16,Flat",
                                     "IDMap2,IVF16,PQ8x4"])
def test_every_storage_streams_to_the_brute_force_over_what_it_decodes(
        build: Build, synthetic: Any, tmp_path: Path, factory: str) -> None:
    """Flat storage read in place, IVF lists decoded, everything else reconstructed in
    blocks: each equals a brute force over ``reconstruct_n``, with ids as the index keys
    them (an IDMap's ids; line i of an ids file otherwise)."""
    import faiss

    vectors, queries = synthetic[0][:3000], synthetic[1][:10]
    index = faiss.index_factory(DIM, factory)
    index.train(vectors)
    raw: dict[str, Any] = {"kind": "faiss", "path": str(tmp_path / "i.faiss"),
                           "exact_memory": 200 * DIM * 4}
    if factory.startswith("IDMap2"):
        keys = np.arange(len(vectors), dtype=np.int64) * 7 + 3
        index.add_with_ids(vectors, keys)
        names = [str(k) for k in keys]
    else:
        index.add(vectors)
        names = [f"doc-{i}" for i in range(len(vectors))]
        (tmp_path / "ids.txt").write_text("\n".join(names) + "\n")
        raw["ids_path"] = str(tmp_path / "ids.txt")
    faiss.write_index(index, raw["path"])
    try:
        faiss.extract_index_ivf(index).make_direct_map()
    except RuntimeError:
        pass  # not an IVF index
    decoded = (index.index if factory.startswith("IDMap2") else index).reconstruct_n(
        0, len(vectors))
    dist = brute_force(queries, decoded, K)
    want = [[names[i] for i in row] for row in np.argsort(dist, axis=1, kind="stable")[:, :K]]
    got = build("f", raw).exact_search(queries, K)
    assert got.scanned == len(vectors)
    by_name = {name: i for i, name in enumerate(names)}
    kth_got = [row[by_name[ids[-1]]] for row, ids in zip(dist, got.ids, strict=True)]
    kth_want = [row[by_name[ids[-1]]] for row, ids in zip(dist, want, strict=True)]
    np.testing.assert_allclose(kth_got, kth_want, rtol=1e-4, atol=1e-4)
    index_of = [[int(by_name[i]) for i in ids] for ids in got.ids]
    assert tie_tolerant_recall([[str(i) for i in r] for r in index_of],
                               [[str(by_name[i]) for i in r] for r in want], dist, K) == 1.0



def test_a_fast_scan_index_is_refused_unless_its_originals_are_given(
        build: Build, synthetic: Any, tmp_path: Path) -> None:
    """FAISS 1.15 crashes the process reconstructing a fast-scan index read from a file;
    exact search and fetch say what to do instead."""
    import faiss

    vectors, queries = synthetic[0][:3000], synthetic[1][:5]
    index = faiss.index_factory(DIM, "IVF16,PQ8x4fs")
    index.train(vectors)
    index.add(vectors)
    faiss.write_index(index, str(tmp_path / "fs.faiss"))
    raw = {"kind": "faiss", "path": str(tmp_path / "fs.faiss")}
    target = build("fs", raw)
    for call in (lambda: target.exact_search(queries, K), lambda: target.fetch(["1"])):
        with pytest.raises(TargetError, match="packed for fast scan.*set ground_truth.vectors"):
            call()
    np.save(tmp_path / "originals.npy", vectors)
    ref = build("fs", {**raw, "ground_truth": {"vectors": str(tmp_path / "originals.npy")}})
    order = np.argsort(brute_force(queries, vectors, K), axis=1)[:, :K]
    assert ref.exact_search(queries, K).ids == [[str(i) for i in row] for row in order]


# -- pgvector: one streamed COPY against a sequential scan per query -------------------

@pytest.fixture(scope="module")
def pg_table(synthetic: Any, postgres_server_url: str) -> Iterator[tuple[str, np.ndarray]]:
    """A fresh database with ``items (id bigint, vec vector(32), lang text)``: 5,000 of the
    clustered vectors, every third row ``lang = 'de'``, and an HNSW index."""
    import psycopg

    from tests.conftest import create_database

    url, drop = create_database(postgres_server_url)
    url = url.replace("postgresql+psycopg://", "postgresql://", 1)
    vectors = synthetic[0][:5000]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, vec vector(32), lang text)")
        with conn.cursor() as cur, cur.copy("COPY items FROM STDIN") as copy:
            for i, v in enumerate(vectors):
                copy.write_row((i, "[" + ",".join(map(repr, v.tolist())) + "]",
                                "de" if i % 3 == 0 else "en"))
        conn.execute("CREATE INDEX ON items USING hnsw (vec vector_l2_ops)")
        conn.execute("ANALYZE items")
    yield url, vectors
    drop()


def pg(build: Build, url: str, **extra: Any) -> VectorTarget:
    return build("pg", {"kind": "pgvector", "url": url, "table": "items", "vector_column": "vec",
                        "filter_columns": ["lang"], **extra})


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
@pytest.mark.parametrize("filt", [None, {"lang": "de"}])
def test_pgvector_streamed_ground_truth_equals_its_scan_per_query(
        build: Build, pg_table: Any, synthetic: Any, metric: str, filt: Any) -> None:
    url, vectors = pg_table
    queries = synthetic[1][:12]
    engine, stream = (pg(build, url, metric=metric, exact_mode=mode, exact_memory=16 << 10)
                      for mode in ("engine", "stream"))
    try:
        by_scan = engine.exact_search(queries, K, filt)
        by_copy = stream.exact_search(queries, K, filt)
    finally:
        engine.close()
        stream.close()
    assert (by_scan.exact_mode, by_copy.exact_mode) == ("engine", "stream")
    assert by_copy.scanned == (5000 if filt is None else 1667)  # 128-row blocks: 40 of them
    assert by_copy.ids == by_scan.ids
    np.testing.assert_allclose(by_copy.scores, by_scan.scores, rtol=1e-4, atol=1e-4)
    subset = vectors if filt is None else vectors[::3]
    ids = np.arange(5000) if filt is None else np.arange(0, 5000, 3)
    if metric == "l2":
        order = np.argsort(brute_force(queries, subset, K), axis=1)[:, :K]
    else:
        unit = subset / np.linalg.norm(subset, axis=1, keepdims=True)
        order = np.argsort(-(queries @ (unit if metric == "cosine" else subset).T), axis=1)
    assert by_copy.ids == [[str(ids[i]) for i in row[:K]] for row in order]


def test_pgvector_chooses_the_cheaper_mode_and_keeps_to_a_budget(build: Build, pg_table: Any,
                                                                synthetic: Any) -> None:
    url, _ = pg_table
    queries = synthetic[1]
    target = pg(build, url, exact_memory=16 << 10)
    try:
        assert target.exact_search(queries[:1], K).exact_mode == "engine"
        assert target.exact_search(queries, K).exact_mode == "stream"
        with pytest.raises(GroundTruthBudgetExceeded) as caught:
            target.exact_search(queries, K, budget=1e-6)  # streamed: stops after a block
        assert caught.value.total == 5000 and 0 < caught.value.scanned < 5000
        per_query = pg(build, url, exact_mode="engine")
        try:
            with pytest.raises(GroundTruthBudgetExceeded) as caught:
                per_query.exact_search(queries[:5], K, budget=1e-6)  # stops after a query
        finally:
            per_query.close()
        assert (caught.value.scanned, caught.value.queries) == (5000, 1)
        # the connection is still usable after a COPY stopped half way
        assert target.exact_search(queries[:2], K).ids == target.exact_search(
            queries[:2], K).ids
    finally:
        target.close()


# -- Qdrant, LanceDB: a scroll or record-batch pass against the engine's exact query ---------

@pytest.mark.parametrize("kind", ["qdrant", "lancedb"])
@pytest.mark.parametrize("topic", [None, 0])
def test_streamed_ground_truth_equals_the_engines_exact_query(
        build: Build, request: pytest.FixtureRequest, data: Any, kind: str,
        topic: Any) -> None:
    if kind == "qdrant":
        raw = {"kind": "qdrant", "path": str(request.getfixturevalue("qdrant_dir")),
               "collection": "docs", "filter_columns": ["topic"]}
    else:
        raw = {"kind": "lancedb", "uri": str(request.getfixturevalue("lance_dir")),
               "table": "docs", "filter_columns": ["topic"]}
    filt = None if topic is None else {"topic": data.topics[topic]}
    queries = data.queries[:8]
    engine = build("e", {**raw, "exact_mode": "engine"})
    try:
        by_engine = engine.exact_search(queries, K, filt)
    finally:
        engine.close()  # Qdrant local mode: one client per directory at a time
    stream = build("s", {**raw, "exact_mode": "stream", "exact_memory": 200 * 384 * 4})
    try:
        by_stream = stream.exact_search(queries, K, filt)
    finally:
        stream.close()
    members = len(data.ids) if filt is None else data.topics.count(filt["topic"])
    assert (by_engine.exact_mode, by_stream.exact_mode) == ("engine", "stream")
    assert by_stream.scanned == members
    assert by_stream.ids == by_engine.ids
    np.testing.assert_allclose(by_stream.scores, by_engine.scores, rtol=1e-4, atol=1e-4)


def test_qdrant_local_mode_is_always_exact_and_says_hnsw_ef_has_no_effect(
        build: Build, qdrant_dir: Path, tmp_path: Path) -> None:
    from ragmon.monitor.app import default_plugins
    from ragmon.monitor.config import load_config
    from ragmon.monitor.targets.checks import target_issues

    target = build("q", {"kind": "qdrant", "path": str(qdrant_dir), "collection": "docs"})
    assert target.always_exact
    config = tmp_path / "ragmon.yaml"
    config.write_text(f"targets:\n  q: {{kind: qdrant, path: {qdrant_dir}, collection: docs, "
                      "hnsw_ef: 1}\n")
    issues = target_issues(load_config(config, default_plugins()))
    assert [(i.path, i.warning) for i in issues] == [("targets.q.hnsw_ef", True)]
    assert "no effect in Qdrant local mode" in str(issues[0])


def test_an_http_exact_endpoint_keeps_to_a_budget_per_query(build: Build,
                                                            search_service: Any,
                                                            data: Any) -> None:
    from tests.targets.conftest import http_raw

    target = build("app", http_raw(search_service.url + "/search",
                                   exact_url=search_service.url + "/exact"))
    try:
        with pytest.raises(GroundTruthBudgetExceeded) as caught:
            target.exact_search(data.queries[:5], K, budget=1e-9)
        assert caught.value.queries == 1  # stopped after the first answer
        assert target.exact_search(data.queries[:5], K, budget=60.0).exact_mode == "engine"
    finally:
        target.close()


@pytest.mark.parametrize("kind", ["chroma", "qdrant", "lancedb"])
def test_a_streamed_pass_stops_at_its_budget_on_every_engine(
        build: Build, request: pytest.FixtureRequest, data: Any, kind: str) -> None:
    location = {"chroma": ("path", "chroma_dir", {"collection": "docs", "page_size": 100}),
                "qdrant": ("path", "qdrant_dir", {"collection": "docs"}),
                "lancedb": ("uri", "lance_dir", {"table": "docs"})}[kind]
    key, fixture, extra = location
    raw = {"kind": kind, key: str(request.getfixturevalue(fixture)), **extra,
           "exact_memory": 100 * 384 * 4}
    if kind != "chroma":
        raw["exact_mode"] = "stream"
    target = build("t", raw)
    try:
        with pytest.raises(GroundTruthBudgetExceeded) as caught:
            target.exact_search(data.queries, K, budget=1e-9)
    finally:
        target.close()
    err = caught.value
    assert err.total == len(data.ids) and 0 < err.scanned < err.total
    assert err.queries == len(data.queries)
