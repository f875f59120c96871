"""Ground truth at scale, the probe's side: one exact search for all the chosen queries, a
rotating query subset with a calibrated interval, and a failing ground truth that keeps the
live measurement."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragmon.probes.recall.fidelity import fidelity_rows
from ragmon.probes.recall.groundtruth import (
    choose,
    fidelity_interval,
    permutation,
    plan,
    slice_of,
)

from .conftest import PROBE, Env, write_index


def values(result: Any) -> dict[tuple[str, str], float]:
    return {(n, ",".join(f"{k}={v}" for k, v in sorted(labels.items()))): v
            for n, labels, v in result.values}


# -- the subset and its interval -------------------------------------------------------------


@pytest.fixture(scope="module")
def per_query_fidelity(corpus_vectors: np.ndarray) -> dict[int, np.ndarray]:
    """Per-query fidelity at k = 1, 10, 20 of 1,000 real queries (held-out MiniLM chunk
    embeddings) on a real FAISS IVF32,Flat index of the other 1,561 chunks, nprobe 2: live
    search by FAISS, ground truth by faiss.knn, scored by the probe's own code."""
    import faiss

    order = np.random.default_rng(0).permutation(len(corpus_vectors))
    queries = np.ascontiguousarray(corpus_vectors[order[:1000]], dtype=np.float32)
    base = np.ascontiguousarray(corpus_vectors[order[1000:]], dtype=np.float32)
    index = faiss.index_factory(base.shape[1], "IVF32,Flat", faiss.METRIC_INNER_PRODUCT)
    index.train(base)
    index.add(base)
    index.nprobe = 2
    _, live = index.search(queries, 20)
    _, exact = faiss.knn(queries, base, 20, metric=faiss.METRIC_INNER_PRODUCT)
    ids = [str(i) for i in range(len(base))]
    sides = [([ids[p] for p in row if p >= 0], [ids[p] for p in truth])
             for row, truth in zip(live, exact, strict=True)]
    rows = fidelity_rows(queries, sides, dict(zip(ids, base, strict=True)), "ip", [1, 10, 20],
                         1e-6)
    return {k: np.array([r["recall"][str(k)] for r in rows]) for k in (1, 10, 20)}


@pytest.mark.parametrize("k", [1, 10, 20])
def test_the_interval_covers_the_true_fidelity_at_its_nominal_rate(
    per_query_fidelity: dict[int, np.ndarray], k: int
) -> None:
    """100 seeded subsets of 100 of the 1,000 queries: the 95% interval holds the fidelity of
    all 1,000 in 93 to 100 of them, and is not bought by width: on average at most 1.3 times
    the normal-theory width computed from the population's own spread."""
    f = per_query_fidelity[k]
    true, n, s = float(f.mean()), len(f), 100
    assert 0.5 < true < 0.99  # a real ANN error to measure, not a trivial index
    covered, widths = 0, []
    for seed in range(100):
        chosen = slice_of(permutation(n, f"golden-v{seed}"), s, 0)
        ci = fidelity_interval(f[chosen], n, 0.95)
        assert ci.mean == pytest.approx(f[chosen].mean())
        covered += ci.lower <= true <= ci.upper
        widths.append(ci.upper - ci.lower)
    oracle = 2 * 1.96 * f.std() / math.sqrt(s) * math.sqrt(1 - s / n)
    assert 93 <= covered <= 100, covered
    assert float(np.mean(widths)) < 1.3 * oracle, (np.mean(widths), oracle)


def test_a_fully_measured_golden_set_has_no_sampling_error() -> None:
    ci = fidelity_interval([1.0, 0.5, 0.8], 3)
    assert ci.lower == ci.upper == ci.mean == pytest.approx(2.3 / 3)
    # a subset that saw no miss still leaves room for the queries it did not see
    ci = fidelity_interval([1.0] * 30, 1000)
    assert ci.upper == 1.0 and 0.85 < ci.lower < 0.95


@pytest.mark.parametrize(("n", "s"), [(65, 10), (1000, 300), (7, 7), (10, 3)])
def test_over_ceil_n_over_s_runs_every_query_is_measured(n: int, s: int) -> None:
    order = permutation(n, "v1")
    assert sorted(order.tolist()) == list(range(n))
    assert (permutation(n, "v1") == order).all() and not (permutation(n, "v2") == order).all()
    seen: set[int] = set()
    runs = math.ceil(n / s)
    for rotation in range(runs):
        chosen = choose(n, "v1", s, rotation, 0.1).chosen
        assert len(chosen) == s and len(set(chosen)) == s
        seen.update(chosen)
    assert seen == set(range(n))
    # the rotation starts over: run ceil(n/s) measures what run 0 did
    assert choose(n, "v1", s, runs, 0.1).chosen == choose(n, "v1", s, 0, 0.1).chosen


def test_the_subset_is_sized_from_the_previous_runs_rate() -> None:
    # nothing measured yet: try them all
    first = plan(1000, "v", 10.0, None, 50_000)
    assert first.chosen == list(range(1000)) and first.rotation == 0
    # 1,000 queries took 40 s: at 70% of a 10 s budget, 175 fit; the index doubled since
    prev = {"queries": 1000, "seconds": 40.0, "count": 25_000, "rotation": 4}
    p = plan(1000, "v", 10.0, prev, 50_000)
    assert (p.size, p.rotation, p.slices) == (87, 5, 12) and len(p.chosen) == 87
    # a run that ran out of budget: the target's projection sizes the next one
    over = {"skipped": "budget", "projected": 100.0, "asked": 1000, "count": 50_000,
            "rotation": 0}
    assert plan(1000, "v", 10.0, over, 50_000).size == 70


# -- one exact search, and what a failing one leaves ------------------------------------------


def _counting_faiss(env: Env) -> Any:
    """The real FAISS adapter, counting the rows of each search call it answers."""
    from ragmon.monitor.targets.faiss import FaissTarget

    class Counting(FaissTarget):
        live: list[int] = []
        exact: list[int] = []

        def search(self, vectors: np.ndarray, *args: Any, **kwargs: Any) -> Any:
            self.live.append(len(vectors))
            return super().search(vectors, *args, **kwargs)

        def exact_search(self, vectors: np.ndarray, *args: Any, **kwargs: Any) -> Any:
            self.exact.append(len(vectors))
            return super().exact_search(vectors, *args, **kwargs)

    target = Counting("docs", env.context.config.targets["docs"])
    env.context._targets["docs"] = target
    return target


def test_live_search_is_batched_and_exact_search_is_one_call_for_all_queries(env: Env) -> None:
    env.probe["search_batch"] = 16
    env.reload()
    target = _counting_faiss(env)
    result, _ = env.run()
    assert result.status == "ok", result.error
    assert target.live == [16, 16, 16, 16, 1] and target.exact == [65]
    v = values(result)
    assert v[("ground_truth_queries", "")] == 65
    for k in (1, 5, 10, 20):  # every query measured: the interval is the point
        fid = v[("index_fidelity_ratio", f"k={k}")]
        assert v[("index_fidelity_lower_ratio", f"k={k}")] == fid
        assert v[("index_fidelity_upper_ratio", f"k={k}")] == fid
    gt = result.details["fidelity"]["ground_truth"]
    assert (gt["queries"], gt["total"], gt["skipped"], gt["of"]) == (65, 65, None, "stored")
    assert all("exact" in row and "fidelity" in row for _, _, row in result.queries)


def _padded_pg_docs(url: str, ids: list[str], vectors: np.ndarray, rows: int) -> str:
    """The corpus in a pgvector table with an HNSW cosine index, plus ``rows`` rows that
    have no vector yet (ingested, not embedded), each filling a page with document text:
    the index does not hold them, so live search stays fast and a count reads only the
    primary key (a few bytes a row), but the sequential scan of exact search reads a page
    per row. Parallel scans are off, so the scan is slow on any number of cores."""
    import psycopg

    from .test_fidelity import _pg_docs

    url = _pg_docs(url, ids, vectors)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE docs ADD COLUMN body text")
        conn.execute("ALTER TABLE docs ALTER COLUMN body SET STORAGE PLAIN")
        conn.execute("ALTER TABLE docs SET (parallel_workers = 0)")
        conn.execute("INSERT INTO docs SELECT 'pending-' || g, NULL, repeat('x', 8000) "
                     "FROM generate_series(1, %s) g", (rows,))
        conn.execute("VACUUM ANALYZE docs")
        conn.execute("CHECKPOINT")  # the bulk write is flushed before anything is timed
    return url


def _timeout_between_live_and_scan(url: str, query: np.ndarray) -> str:
    """A statement timeout that the slowest live statement (a count, an HNSW search) meets
    and one exact scan does not, on this machine now: the geometric mean of the two,
    measured the way the target runs them. A machine too loaded to tell them apart fails
    here, saying so, rather than later with a puzzling verdict."""
    import psycopg
    from pgvector.psycopg import register_vector

    def timed(conn: psycopg.Connection, sql: str, *args: object) -> float:
        start = time.perf_counter()
        conn.execute(sql, args).fetchall()
        return time.perf_counter() - start

    knn = "SELECT id, embedding <=> %s FROM docs ORDER BY embedding <=> %s LIMIT 10"
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
        register_vector(conn)
        live = max([timed(conn, "SELECT count(*) FROM docs") for _ in range(10)]
                   + [timed(conn, knn, query, query) for _ in range(10)])
        conn.execute("SET enable_indexscan = off")
        scan = min(timed(conn, knn, query, query) for _ in range(3))
    assert scan > 8 * live, (f"an exact scan ({scan * 1000:.0f} ms) is not much slower than "
                             f"live statements ({live * 1000:.0f} ms): machine too loaded")
    return f"{math.sqrt(live * scan) * 1000:.0f}ms"


def test_ground_truth_that_fails_keeps_the_live_measurement(env: Env, postgres_url: str) -> None:
    """pgvector's own exact mode (a sequential scan of 100,000 pages per query) past a 1 ms
    exact_budget is a `budget` skip; past the target's statement timeout (set between
    the slowest live statement and one scan, as measured here) it used to fail the run with
    "did not answer" and lose the live results. Either way the run is now ok, with live
    metrics equal to a run whose ground truth worked, no fidelity, and the skip counted by
    reason."""
    url = _padded_pg_docs(postgres_url, env.ids, env.vectors, 100_000)
    env.target = {"kind": "pgvector", "url": url, "table": "docs", "embedder": "minilm",
                  "ef_search": 40, "exact_mode": "engine"}
    env.probe.update(sample_size=0,  # a sample of rows would draw the vector-less ones
                     exact_budget="1ms")
    env.reload()
    over, _ = env.run()  # no rate known yet: all 65 queries are tried
    env.probe.update(timeout="300s", exact_budget="240s")  # room for 65 full scans
    env.reload()
    healthy, _ = env.run()
    assert healthy.status == "ok", healthy.error
    assert values(healthy)[("ground_truth_queries", "")] == 65
    gt = over.details["fidelity"]["ground_truth"]
    assert gt["skipped"] == "budget" and gt["asked"] == 65 and gt["projected"] > 0.001
    assert over.details["fidelity"]["note"].startswith(
        "fidelity not measured this run (budget): target 'docs': exact search of ")
    env.target["timeout"] = _timeout_between_live_and_scan(url, env.vectors[0])
    env.reload()
    for result, budget, error in ((over, 1, 0), (env.run()[0], 1, 1), (env.run()[0], 1, 2)):
        assert result.status == "ok", result.error
        v = values(result)
        live = {key: value for key, value in v.items() if "mode=live" in key[1]}
        assert live and live == {key: value for key, value in values(healthy).items()
                                 if "mode=live" in key[1]}
        assert not any("fidelity" in name or "mode=exact" in labels for name, labels in v)
        assert v[("ground_truth_queries", "")] == 0
        assert v[("ground_truth_skipped_total", "reason=budget")] == budget
        assert v[("ground_truth_skipped_total", "reason=error")] == error
        assert all(row["live"]["ids"] and "exact" not in row for _, _, row in result.queries)
    note = result.details["fidelity"]["note"]
    assert note.startswith("fidelity not measured this run (error): target 'docs'"), note
    assert "did not answer" in note
    report = env.runner.probes[PROBE].render(result)
    assert "  fidelity: fidelity not measured this run (error)" in report


def test_an_always_exact_engine_mode_reports_fidelity_as_not_measurable(
    env: Env, tmp_path: Path
) -> None:
    """Qdrant's local mode is a brute-force scan whatever hnsw_ef says: its fidelity is not
    1.000 but "not measurable", and no exact search is spent on it."""
    import json

    from qdrant_client import QdrantClient, models

    vectors = env.vectors[:600]
    client = QdrantClient(path=str(tmp_path / "qdrant"))
    client.create_collection("chunks", vectors_config=models.VectorParams(
        size=vectors.shape[1], distance=models.Distance.COSINE))
    client.upload_collection("chunks", vectors=vectors, ids=list(range(len(vectors))))
    client.close()  # local mode locks the directory
    queries = vectors[:20] + 0.05 * np.random.default_rng(0).standard_normal(
        (20, vectors.shape[1])).astype(np.float32)
    top = np.argsort(-(queries @ vectors.T), axis=1)[:, :3]
    env.golden.write_text("".join(json.dumps({
        "id": f"q{i}", "vector": q.tolist(), "relevant": {str(d): 1 for d in row}}) + "\n"
        for i, (q, row) in enumerate(zip(queries, top, strict=True))))
    env.target = {"kind": "qdrant", "path": str(tmp_path / "qdrant"), "collection": "chunks",
                  "hnsw_ef": 1}
    env.reload()
    result, _ = env.run()
    assert result.status == "ok", result.error
    v = values(result)
    assert not any("fidelity" in name or "mode=exact" in labels for name, labels in v)
    assert ("ground_truth_queries", "") not in v
    assert v[("recall_ratio", "k=5,mode=live")] == 1.0  # hnsw_ef 1 changed nothing
    fidelity = result.details["fidelity"]
    assert not fidelity["measurable"] and fidelity["ground_truth"] is None
    assert fidelity["note"].startswith("not measurable: this engine mode is always exact")
    report = env.runner.probes[PROBE].render(result)
    assert "fidelity: not measurable: this engine mode is always exact" in report
    assert "index fidelity not measurable" in report


def test_a_run_past_its_budget_measures_a_subset_next_time_with_an_interval(env: Env) -> None:
    """With exact_budget 1ms, the first run (no rate known yet) measures every query and
    records how long that took; the next measures the slice of the rotation that fits, and
    its fidelity carries an interval from that subset."""
    env.probe["exact_budget"] = "1ms"
    env.reload()
    first, _ = env.run()
    gt = first.details["fidelity"]["ground_truth"]
    assert (gt["queries"], gt["rotation"], gt["seconds_per_query"]) == (65, 0, None)
    assert gt["seconds"] > 0.001 * 0.7  # 65 queries over 2,561 x 384 take longer than that
    second, _ = env.run()
    assert second.status == "ok", second.error
    gt = second.details["fidelity"]["ground_truth"]
    if gt["skipped"] is None:  # else: the target projected past the budget (counted)
        n = gt["queries"]
        assert 1 <= n < 65 and gt["rotation"] == 1 and gt["slices"] == -(-65 // gt["size"])
        measured = [row for _, _, row in second.queries if "fidelity" in row]
        assert len(measured) == n and all("exact" in row for row in measured)
        assert sum("exact" in row for _, _, row in second.queries) == n
        v = values(second)
        assert v[("ground_truth_queries", "")] == n
        for k in (1, 10):
            lower, mean, upper = (v[(f"index_fidelity{part}_ratio", f"k={k}")]
                                  for part in ("_lower", "", "_upper"))
            assert lower <= mean <= upper and upper - lower > 0
        assert f"measured on {n} of 65 queries" in second.details["fidelity"]["note"]
        report = env.runner.probes[PROBE].render(second)
        assert f"from {n} of 65 queries" in report
    else:
        assert values(second)[("ground_truth_skipped_total", "reason=budget")] == 1


def test_fidelity_from_flat_storage_scores_equals_fetched_vectors_and_the_oracle(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FAISS index that keeps its vectors flat scores live and exact results by the exact
    inner product, so fidelity ranks by those scores and fetches nothing. On a degraded
    HNSW index (M 4, efSearch 2) of the real corpus: the per-query fidelity equals the
    fetched-vectors path's, and a float64 numpy brute force over the same vectors; a
    quantised index keeps fetching (its scores are approximate)."""
    import dataclasses

    import faiss

    from ragmon.monitor.targets.faiss import FaissTarget

    index = faiss.IndexHNSWFlat(env.vectors.shape[1], 4, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction, index.hnsw.efSearch = 8, 2
    index.add(np.ascontiguousarray(env.vectors, dtype=np.float32))
    faiss.write_index(index, str(env.index))
    env.probe.update(k=[1, 5, 10])
    env.reload()
    fetched: list[int] = []
    fetch = FaissTarget.fetch
    monkeypatch.setattr(FaissTarget, "fetch", lambda self, ids: (fetched.append(len(ids)),
                                                                 fetch(self, ids))[1])
    by_scores, _ = env.run()
    assert by_scores.details["target"]["params"]["efSearch"] == 2
    causes = len(fetched)  # the golden documents' vectors and the health sample
    describe = FaissTarget.describe
    monkeypatch.setattr(FaissTarget, "describe", lambda self: dataclasses.replace(
        describe(self), scores_are_distances=False))
    by_vectors, _ = env.run()
    rows = {q: d for q, _, d in by_scores.queries}
    assert {q: d["fidelity"] for q, d in rows.items()} == \
        {q: d["fidelity"] for q, _, d in by_vectors.queries}
    assert len(fetched) == 2 * causes + 1  # + one fetch of the results' vectors
    # the oracle: float64 inner products over every stored vector
    texts = {json.loads(line)["id"]: json.loads(line)["query"]
             for line in env.golden.read_text().splitlines()}
    qids = list(rows)
    queries = np.asarray(env.minilm.encode([texts[q] for q in qids]), dtype=np.float64)
    base = np.asarray(env.vectors, dtype=np.float64)
    position = {d: i for i, d in enumerate(env.ids)}
    recall = []
    for q, vector in zip(qids, queries, strict=True):
        dist = -(base @ vector)
        ordered = np.sort(dist)
        got = {}
        for k in (1, 5, 10):
            kth = ordered[k - 1]
            live = rows[q]["live"]["ids"][:k]
            hits = sum(dist[position[d]] <= kth + 1e-6 * max(1.0, abs(kth)) for d in live)
            got[str(k)] = min(hits, k) / k
        assert rows[q]["fidelity"]["recall"] == got, q
        recall.append(got["10"])
    assert 0.1 < float(np.mean(recall)) < 0.95  # degraded: far from 1, far from 0
    # a quantised index: scores are approximate, so the results' vectors are fetched
    write_index(env.index, env.vectors, env.ids, kind="ivfpq")
    env.reload()
    fetched.clear()
    monkeypatch.setattr(FaissTarget, "describe", describe)
    pq, _ = env.run()
    assert pq.details["fidelity"]["ground_truth"]["of"] == "decoded"
    assert len(fetched) == causes + 1
