"""Ground truth at scale: one streamed pass against its floors, on FAISS and pgvector.

    nice .venv/bin/python bench/ground_truth.py faiss               # 1,000,000 x 384 IVF-PQ
    nice .venv/bin/python bench/ground_truth.py pgvector --n 200000 # table size to load
    nice .venv/bin/python bench/ground_truth.py costs               # cost-model inputs

Data: the clustered synthetic vectors of ``_million.py`` (same generator and seeds; 4,000
topics, unit rows), 1,000 query vectors from the same distribution, k = 20, inner product.
Cached under ``.cache/bench/ground_truth/`` (git-ignored).

**faiss**: an ``IVF1024,PQ48`` index (inner product) over the vectors. The streamed
ground truth is ``FaissTarget.exact_search`` (decoding each inverted list, 64 MiB blocks)
in a fresh process, whose peak RSS (``VmHWM``) is compared with its RSS after loading the
index. The floor is what no streaming can beat: one ``faiss.knn`` over the decoded
vectors already held in memory (decoding not timed). Ratio = streamed / floor, both in
this run, both with FAISS's threads (2 here).

**pgvector**: a table ``(id bigint, embedding vector(384))`` on a local PostgreSQL (the
pgserver wheel the tests use, default settings), without a vector index: neither exact
mode reads one, and building HNSW over a million rows would dominate the run. Streamed =
``PgvectorTarget.exact_search`` with ``exact_mode: stream`` (one binary COPY); per query =
``exact_mode: engine`` (a sequential scan per query, ``enable_indexscan = off``), timed
on ``--engine-queries`` queries and scaled linearly: each query is an independent full
scan.

**costs**: the inputs of ``Costs`` (monitor/targets/_exact.py) for pgvector, measured on
the loaded table: seconds per row of one engine scan, and per row read by COPY.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _million import CENTRES, CHUNK, DIM, N_QUERIES, N, _draw, _unit, _write_npy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "bench" / "ground_truth"
RESULTS = ROOT / "bench" / "results" / "ground_truth.txt"
K = 20
FACTORY = "IVF1024,PQ48"


def log(*parts: Any) -> None:
    print(*parts, flush=True)


def data(n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, queries): ``_million``'s generator and seeds, memory-mapped."""
    CACHE.mkdir(parents=True, exist_ok=True)
    vectors, queries = CACHE / "vectors.npy", CACHE / "queries.npy"
    if not vectors.exists() or not queries.exists():
        rng = np.random.default_rng(0)
        centres = _unit(rng.standard_normal((CENTRES, DIM), dtype=np.float32))

        def fill(out: np.ndarray) -> None:
            for lo in range(0, N, CHUNK):
                out[lo:lo + CHUNK] = _draw(rng, centres, min(CHUNK, N - lo))

        _write_npy(vectors, fill, (N, DIM))
        query_rng = np.random.default_rng(1)
        _write_npy(queries, lambda out: out.__setitem__(
            slice(None), _draw(query_rng, centres, N_QUERIES)), (N_QUERIES, DIM))
    return np.load(vectors, mmap_mode="r")[:n], np.load(queries)


def status_mib(field: str) -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (its peak) of this process, in MiB. Not
    ``ru_maxrss``: that one keeps the parent's resident size at fork across the exec, and
    the parent holds the decoded vectors of the floor."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- FAISS ------------------------------------------------------------------------------

def ivfpq_index(vectors: np.ndarray) -> Path:
    import faiss

    path = CACHE / f"{FACTORY.replace(',', '_')}_{len(vectors)}.faiss"
    if path.exists():
        return path
    index = faiss.index_factory(DIM, FACTORY, faiss.METRIC_INNER_PRODUCT)
    start = time.perf_counter()
    index.train(np.ascontiguousarray(vectors[:: max(1, len(vectors) // 60_000)]))
    for lo in range(0, len(vectors), 100_000):
        index.add(np.ascontiguousarray(vectors[lo:lo + 100_000]))
    log(f"built {FACTORY} over {len(vectors):,} in {time.perf_counter() - start:.0f}s")
    tmp = path.with_suffix(".tmp")
    faiss.write_index(index, str(tmp))
    os.replace(tmp, path)
    return path


def streamed_child(index: str, queries: str, block: int) -> None:
    """In a fresh process: load the target, then stream the ground truth; print JSON."""
    from ragmon.monitor.targets import TARGET_KINDS

    spec = TARGET_KINDS["faiss"]
    config = spec.params.model_validate({"kind": "faiss", "path": index, "exact_memory": block})
    target = spec.factory("bench", config)
    q = np.load(queries)
    target.count()  # loads the index
    loaded_rss, loaded_peak = status_mib("VmRSS"), status_mib("VmHWM")
    start = time.perf_counter()
    result = target.exact_search(q, K)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "scanned": result.scanned, "mode": result.exact_mode,
                      "loaded_rss_mib": loaded_rss, "loaded_peak_mib": loaded_peak,
                      "peak_mib": status_mib("VmHWM"), "ids": result.ids[:50]}))


def bench_faiss(args: argparse.Namespace) -> list[str]:
    import faiss

    vectors, queries = data(args.n)
    path = ivfpq_index(vectors)
    queries = queries[:args.queries]
    qpath = CACHE / "queries_run.npy"
    np.save(qpath, queries)
    out = [f"## FAISS {FACTORY}, {len(vectors):,} x {DIM}, {len(queries)} queries, k={K}, "
           f"{faiss.omp_get_max_threads()} threads, block {args.block >> 20} MiB"]
    index = faiss.read_index(str(path))
    ivf = faiss.extract_index_ivf(index)
    ivf.make_direct_map()
    decoded = index.reconstruct_n(0, index.ntotal)
    runs, floors = [], []
    for _ in range(args.repeats):  # interleaved, so both see the same machine
        child = subprocess.run([sys.executable, __file__, "faiss-child", str(path), str(qpath),
                                str(args.block)], capture_output=True, text=True, check=True)
        runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
        start = time.perf_counter()
        _, floor_ids = faiss.knn(queries, decoded, K, metric=faiss.METRIC_INNER_PRODUCT)
        floors.append(time.perf_counter() - start)
    streamed = min(runs, key=lambda r: r["seconds"])
    floor = min(floors)
    agree = np.mean([len(set(map(int, got)) & set(want.tolist())) / K for got, want in
                     zip(streamed["ids"], floor_ids[:50], strict=False)])
    block_mib = args.block / 2**20
    grown = streamed["peak_mib"] - streamed["loaded_rss_mib"]
    per = streamed["seconds"] / (len(vectors) / 1e6) / (len(queries) / 1000)
    out += [
        f"streamed one pass (fresh process, best of {args.repeats}): {streamed['seconds']:.2f}"
        f" s (all: {', '.join(format(r['seconds'], '.2f') for r in runs)}), scanned "
        f"{streamed['scanned']:,}, mode {streamed['mode']}",
        f"floor, one faiss.knn over the decoded vectors in memory (best of {args.repeats}): "
        f"{floor:.2f} s (all: {', '.join(f'{f:.2f}' for f in floors)})",
        f"ratio streamed / floor: {streamed['seconds'] / floor:.2f}x (goal <= 1.5x)",
        f"seconds per million vectors per 1,000 queries: {per:.2f}",
        f"top-{K} agreement with the floor (first 50 queries): {agree:.4f}",
        f"peak RSS (VmHWM): {streamed['peak_mib']:,.0f} MiB; after loading the index "
        f"{streamed['loaded_rss_mib']:,.0f} MiB (index file {path.stat().st_size / 2**20:,.0f}"
        f" MiB); grown by the pass: {grown:,.0f} MiB for a {block_mib:.0f} MiB block "
        f"(goal: within one block plus the index)",
        f"decoded vectors held by the floor: {decoded.nbytes / 2**20:,.0f} MiB",
    ]
    return out


# -- pgvector ---------------------------------------------------------------------------

def pg_server() -> Any:
    import pgserver

    pgdata = CACHE / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    return pgserver.get_server(pgdata, cleanup_mode=None)


def pg_table(url: str, vectors: np.ndarray) -> str:
    """Table ``items_<n>`` with the first n vectors, loaded by binary COPY, kept."""
    import psycopg

    table = f"items_{len(vectors)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        found = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0]
        if found is not None:
            return table
        start = time.perf_counter()
        conn.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, embedding vector({DIM}))")
        header = np.array([DIM, 0], dtype=">i2").tobytes()
        with conn.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN (FORMAT BINARY)") as cp:
            cp.write(b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8)
            for lo in range(0, len(vectors), 20_000):
                block = np.asarray(vectors[lo:lo + 20_000], dtype=">f4")
                rows = bytearray()
                for i, row in enumerate(block, lo):
                    rows += (b"\x00\x02\x00\x00\x00\x08" + int(i).to_bytes(8, "big")
                             + (4 + 4 * DIM).to_bytes(4, "big") + header + row.tobytes())
                cp.write(bytes(rows))
            cp.write(b"\xff\xff")
        conn.execute(f"VACUUM ANALYZE {table}")
        log(f"loaded {len(vectors):,} rows in {time.perf_counter() - start:.0f}s")
    return table


def pg_target(url: str, table: str, mode: str) -> Any:
    from ragmon.monitor.targets import TARGET_KINDS

    spec = TARGET_KINDS["pgvector"]
    raw = {"kind": "pgvector", "url": url, "table": table, "exact_mode": mode,
           "metric": "ip", "timeout": 3600}
    return spec.factory("bench", spec.params.model_validate(raw))


def bench_pgvector(args: argparse.Namespace) -> list[str]:
    vectors, queries = data(args.n)
    server = pg_server()
    url = server.get_uri()
    table = pg_table(url, vectors)
    stream, engine = pg_target(url, table, "stream"), pg_target(url, table, "engine")
    out = [f"## pgvector, {len(vectors):,} x {DIM}, k={K}, inner product"]
    try:
        stream.exact_search(queries[:2], K)  # warm: the table in the OS cache, a connection
        per_q: list[float] = []
        start = time.perf_counter()
        by_scan = engine.exact_search(queries[:args.engine_queries], K)
        per_q.append((time.perf_counter() - start) / args.engine_queries)
        per_query = per_q[0]
        for n_queries in (100, 1000):
            start = time.perf_counter()
            got = stream.exact_search(queries[:n_queries], K)
            seconds = time.perf_counter() - start
            same = got.ids[:args.engine_queries] == by_scan.ids
            projected = per_query * n_queries
            out.append(f"{n_queries} queries: streamed {seconds:.1f} s (scanned "
                       f"{got.scanned:,}); per-query scans {projected:.1f} s "
                       f"({per_query:.2f} s per query, timed on {args.engine_queries}); "
                       f"speed-up {projected / seconds:.1f}x; same top-{K} as the scans: "
                       f"{same}")
    finally:
        stream.close()
        engine.close()
    return out


def bench_costs(args: argparse.Namespace) -> list[str]:
    """Seconds per row of an engine scan and of the COPY read, for pgvector's Costs."""
    from ragmon.monitor.targets import _pgstream

    vectors, queries = data(args.n)
    server = pg_server()
    url = server.get_uri()
    table = pg_table(url, vectors)
    engine, stream = pg_target(url, table, "engine"), pg_target(url, table, "stream")
    try:
        stream.exact_search(queries[:1], K)
        start = time.perf_counter()
        engine.exact_search(queries[:5], K)
        scan = (time.perf_counter() - start) / 5
        start = time.perf_counter()
        stream.exact_search(queries[:1], K)
        read = time.perf_counter() - start
    finally:
        engine.close()
        stream.close()
    n = len(vectors)
    copy_s, cursor_s = read_paths(url, table, n)
    return [f"## pgvector cost inputs on {n:,} rows",
            f"engine scan per query: {scan:.3f} s = {scan / n:.2e} s per row",
            f"stream (1 query): {read:.3f} s = {read / n:.2e} s per row read",
            f"reading every vector: binary COPY parsed by ragmon {copy_s:.2f} s; server-side "
            f"cursor, binary, pgvector's loader, fetchmany(2000) {cursor_s:.2f} s "
            f"({cursor_s / copy_s:.1f}x the COPY)",
            f"in use: {_pgstream.COSTS}"]


def read_paths(url: str, table: str, n: int) -> tuple[float, float]:
    """Seconds to read every (id, vector) by binary COPY and by a server-side cursor."""
    import psycopg
    from pgvector.psycopg import register_vector

    from ragmon.monitor.targets._pgstream import copy_blocks

    with psycopg.connect(url) as conn:
        register_vector(conn)
        start = time.perf_counter()
        with conn.cursor() as cur, cur.copy(f"COPY (SELECT id::text, embedding FROM {table}) "
                                            "TO STDOUT (FORMAT BINARY)") as copy:
            got = sum(len(ids) for ids, _ in copy_blocks(copy, DIM, 43_690))
        copy_s = time.perf_counter() - start
        start = time.perf_counter()
        with conn.cursor(name="vectors", binary=True) as cur:
            cur.execute(f"SELECT id::text, embedding FROM {table}")
            rows = 0
            while batch := cur.fetchmany(2000):
                ids = [r[0] for r in batch]
                np.vstack([r[1].to_numpy() if hasattr(r[1], "to_numpy") else r[1]
                           for r in batch])
                rows += len(ids)
        cursor_s = time.perf_counter() - start
    assert got == rows == n, (got, rows, n)
    return copy_s, cursor_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", choices=["faiss", "pgvector", "costs", "faiss-child"])
    parser.add_argument("rest", nargs="*")
    parser.add_argument("--n", type=int, default=N)
    parser.add_argument("--queries", type=int, default=N_QUERIES)
    parser.add_argument("--block", type=int, default=64 << 20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--engine-queries", type=int, default=10)
    args = parser.parse_args()
    if args.part == "faiss-child":
        streamed_child(args.rest[0], args.rest[1], int(args.rest[2]))
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    lines = {"faiss": bench_faiss, "pgvector": bench_pgvector, "costs": bench_costs}[
        args.part](args)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    text = "\n".join([lines[0] + f" ({stamp}, load {os.getloadavg()[0]:.1f})", *lines[1:]])
    log(text)
    with open(RESULTS, "a", encoding="utf-8") as fh:
        fh.write(text + "\n\n")


if __name__ == "__main__":
    main()
