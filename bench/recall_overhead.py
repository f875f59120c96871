"""A full 1,000-query recall probe run against the raw FAISS calls it makes, on 1,000,000 x 384.

    .venv/bin/python bench/recall_overhead.py

Options: ``--runs N`` (probe runs, default 4), ``--profile`` (print a cProfile of one
steady run; printed anyway when the target is missed), ``--n N`` (index size, default
1,000,000). Writes the table to bench/results/recall_overhead.txt (with ``--n``,
recall_overhead_N.txt). The first run builds the data set (bench/_million.py: clustered
synthetic vectors, HNSW M=32, cached under .cache/bench/; a smaller ``--n`` draws its
vectors and queries from the same distribution and builds its own HNSW index the same way).

The probe runs as the daemon runs it: a YAML config loaded by ragmon's loader (a ``faiss``
target on the cached index file, a golden set, a ``recall`` probe with the default k 1, 5,
10, 20), a SQLite store in a temporary directory, and ``monitor.runner.Runner.run``, which
also stores the run (aggregates and one row per query). The golden set holds the 1,000
query vectors precomputed, so no embedder is timed; each query's relevant documents are
its true top-3 neighbours (exact search), graded 3, 2, 1.

The raw baseline is the FAISS work the probe needs at max(k) = 20: the live search, one
query per call as the adapter makes it, plus ``faiss.knn`` over the index's flat storage
(the exact search). Raw and probe runs are interleaved. The probe's first run also reads
the index file and the golden set and has no baseline to compare with, so it is shown
apart; the ratio is taken on the later, steady runs (median), which do everything a
scheduled run does, paired comparisons with the baseline included.

The exact search over a million vectors dominates both sides, and its time swings by
several times with the load other processes put on a shared machine, so a wall-clock ratio
can land on either side of 1. The script therefore also times, inside each run, the
target's ``search`` and ``exact_search`` calls: the rest of the run (scoring, fidelity,
causes, comparisons, storing) is the probe's own cost, and ``(fastest raw + own cost) /
fastest raw`` is the ratio an idle machine would show.

Peak RSS is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (the process's high-water mark,
equal to /proc/self/status VmHWM); the process holds two copies of the index (raw and the
probe target's), so the VmRSS growth of each is shown as well.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _million import (  # noqa: E402
    CACHE,
    CENTRES,
    DIM,
    EF_CONSTRUCTION,
    EF_SEARCH,
    N_QUERIES,
    THREADS,
    M,
    Million,
    _draw,
    _unit,
    build,
)
from index_overhead import flat_view, peak_rss_mib, raw_per_query, timed, vm_rss_mib  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "recall_overhead.txt"
PROBE, K = "bench-recall", 20
TARGET = 1.2


def dataset(n: int | None) -> Million:
    """The million-vector set, or ``n`` vectors drawn the same way with their own HNSW
    index (cached under .cache/bench/recall-N/)."""
    if n is None:
        return build()
    import faiss

    folder = CACHE.parent / f"recall-{n}"
    paths = {"vectors": folder / "vectors.npy", "queries": folder / "queries.npy",
             "index": folder / "hnsw.faiss"}
    if all(p.exists() for p in paths.values()):
        return Million(meta={"n": n}, **paths)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    centres = _unit(rng.standard_normal((CENTRES, DIM), dtype=np.float32))
    vectors, queries = _draw(rng, centres, n), _draw(np.random.default_rng(1), centres,
                                                     N_QUERIES)
    faiss.omp_set_num_threads(THREADS)
    index = faiss.IndexHNSWFlat(DIM, M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction, index.hnsw.efSearch = EF_CONSTRUCTION, EF_SEARCH
    index.add(vectors)
    np.save(paths["queries"], queries)
    np.save(paths["vectors"], vectors)
    faiss.write_index(index, str(paths["index"]))
    return Million(meta={"n": n}, **paths)


def golden_file(million: Million, queries: np.ndarray, xb: np.ndarray) -> Path:
    """The golden set (ragmon JSONL): query vectors and their true top-3, cached."""
    import faiss

    path = million.index.parent / "golden.jsonl"
    if path.exists() and path.stat().st_mtime_ns > million.index.stat().st_mtime_ns:
        return path
    _, top = faiss.knn(queries, xb, 3, metric=faiss.METRIC_INNER_PRODUCT)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for i, (vector, ids) in enumerate(zip(queries, top, strict=True)):
            relevant = {str(int(d)): 3 - rank for rank, d in enumerate(ids)}
            fh.write(json.dumps({"id": f"q{i}", "vector": vector.tolist(),
                                 "relevant": relevant}) + "\n")
    tmp.replace(path)
    return path


def runner_for(tmp: Path, million: Million, golden: Path) -> tuple[Any, Any, Any]:
    """(runner, context, store) for a config a user would write."""
    from prometheus_client import CollectorRegistry

    from ragmon.monitor.app import load_config
    from ragmon.monitor.context import ProbeContext
    from ragmon.monitor.runner import Runner
    from ragmon.monitor.store import Store

    store_url = f"sqlite:///{tmp / 'ragmon.db'}"
    config = {
        "store": {"url": store_url},
        "targets": {"bench": {"kind": "faiss", "path": str(million.index)}},
        "golden_sets": {"million": {"path": str(golden)}},
        "probes": {PROBE: {"kind": "recall", "target": "bench", "golden_set": "million",
                           "timeout": "30m"}},
    }
    path = tmp / "ragmon.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    store = Store(store_url)
    store.migrate()
    context = ProbeContext(config := load_config(str(path)), store, config.plugins)
    # settle=True: the heap settled after the first run, as in the daemon
    return (Runner(context, CollectorRegistry(), context.plugins.probes, settle=True),
            context, store)


def _timing(fn: Any, total: list[float]) -> Any:
    """``fn``, adding the seconds each call takes to ``total[0]``."""
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        seconds, out = timed(lambda: fn(*args, **kwargs))
        total[0] += seconds
        return out

    return wrapped


def fidelity_ab(target: Any, result: Any, queries: np.ndarray, rounds: int = 5) -> str:
    """The fidelity step of the last run, alternately one query at a time (``query_fidelity``
    per query, as before) and all at once (``fidelity_rows``): fastest of ``rounds`` each,
    on the same rows and fetched vectors, so both meet the same machine load."""
    from ragmon.probes.recall.fidelity import StoredVectors, fidelity_rows, query_fidelity

    rows = [data for _, _, data in result.queries if "fidelity" in data]
    sides = [(r["live"]["ids"], r["exact"]["ids"]) for r in rows]
    order = {q: i for i, q in enumerate(f"q{i}" for i in range(len(queries)))}
    qv = queries[[order[qid] for qid, _, data in result.queries if "fidelity" in data]]
    got = target.fetch(sorted({d for live, exact in sides for d in (*live, *exact)}))
    desc, ks = target.describe(), [1, 5, 10, 20]
    one_t, all_t = [], []
    def one_at_a_time() -> list[Any]:
        fetched = {d: got.vectors[n] for n, d in enumerate(got.ids)}
        return [query_fidelity(q, live, exact, fetched, desc.metric, ks, 1e-6,
                               target.cosine_ranking)
                for q, (live, exact) in zip(qv, sides, strict=True)]

    for _ in range(rounds):
        one_t.append(timed(one_at_a_time)[0])
        all_t.append(timed(lambda: fidelity_rows(
            qv, sides, StoredVectors(got.ids, got.vectors), desc.metric, ks, 1e-6,
            target.cosine_ranking))[0])
    return (f"fidelity step of {len(rows):,} queries, fastest of {rounds} interleaved: one "
            f"query at a time {min(one_t):.3f} s, all at once {min(all_t):.3f} s "
            f"({min(one_t) / min(all_t):.1f}x)")


def profile_run(runner: Any) -> tuple[str, float, float]:
    """cProfile of one probe run in this thread (the runner's thread is invisible to it):
    the report, the seconds spent outside FAISS's C++ calls, and the total seconds."""
    from ragmon.monitor.probe import Deadline

    probe = runner.probes[PROBE]
    prof = cProfile.Profile()
    prof.enable()
    probe.run(Deadline(1800.0))
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    raw_stats = stats.stats  # type: ignore[attr-defined]
    total = max(ct for (_, _, _, ct, _) in raw_stats.values())
    in_faiss = sum(tt for (file, _, func), (_, _, tt, _, _) in raw_stats.items()
                   if "_swigfaiss" in func or "_swigfaiss" in file)
    stats.sort_stats("cumulative").print_stats(25)
    stats.sort_stats("tottime").print_stats(15)
    return out.getvalue(), total - in_faiss, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4,
                        help="probe runs (the first is shown apart; at least 2)")
    parser.add_argument("--profile", action="store_true",
                        help="also print a cProfile of one steady probe run")
    parser.add_argument("--n", type=int, default=None,
                        help="index size (default: the cached 1,000,000-vector set)")
    args = parser.parse_args()
    if args.runs < 2:
        parser.error("--runs must be at least 2: the ratio is taken on the steady runs")

    import faiss

    million = dataset(args.n)
    faiss.omp_set_num_threads(THREADS)
    queries = million.load_queries()
    rss0 = vm_rss_mib()
    raw_index = faiss.read_index(str(million.index))
    rss_raw = vm_rss_mib()
    xb = flat_view(raw_index)
    golden = golden_file(million, queries, xb)

    def raw() -> None:
        raw_per_query(raw_index, queries, K)
        faiss.knn(queries, xb, K, metric=faiss.METRIC_INNER_PRODUCT)

    with tempfile.TemporaryDirectory(prefix="ragmon-bench-") as tmp:
        runner, context, store = runner_for(Path(tmp), million, golden)
        store_t: list[float] = []
        record_run = store.record_run

        def timed_record(record: Any, *args: Any) -> Any:  # the runner's write of one run
            seconds, run_id = timed(lambda: record_run(record, *args))
            store_t.append(seconds)
            return run_id

        store.record_run = timed_record  # type: ignore[method-assign]
        search_t = [0.0]  # seconds inside the target's search and exact_search, this run
        target = context.target("bench")
        for method in ("search", "exact_search"):
            setattr(target, method, _timing(getattr(target, method), search_t))
        own_t: list[float] = []
        raw_t: list[float] = []
        probe_t: list[float] = []
        # the statuses of every run and the last result: a daemon keeps no result after
        # storing it, and holding every run's rows would grow the heap the collector walks
        statuses: list[str] = []
        last = None
        rss_before_probe = vm_rss_mib()
        for _ in range(args.runs):
            raw_t.append(timed(raw)[0])
            search_t[0] = 0.0
            seconds, (result, run_id) = timed(lambda: runner.run(PROBE))
            probe_t.append(seconds)
            own_t.append(seconds - search_t[0])
            statuses.append(result.status)
            last = result
            del result
        rss_probe = vm_rss_mib()
        profile, own, profiled = profile_run(runner)
        assert last is not None
        ab = fidelity_ab(target, last, queries)
        steady_raw, steady_probe = statistics.median(raw_t[1:]), statistics.median(probe_t[1:])
        ratio = steady_probe / steady_raw
        min_ratio = min(probe_t[1:]) / min(raw_t[1:])
        store_s = statistics.median(store_t[1:args.runs])
        own_s = statistics.median(own_t[1:])
        idle = (min(raw_t) + own_s) / min(raw_t)
        values = {(name, tuple(sorted((k, str(v)) for k, v in labels.items()))): value
                  for name, labels, value in last.values}
        context.close()
        store.close()

    def value(name: str, **labels: Any) -> str:
        key = (name, tuple(sorted((k, str(v)) for k, v in labels.items())))
        got = values.get(key)
        return "n/a" if got is None else f"{got:.3f}"

    lines = [
        f"ragmon recall probe vs raw FAISS: {len(queries):,} golden queries (vectors given, "
        f"top-3 relevant), {raw_index.ntotal:,} x {raw_index.d} IndexHNSWFlat (M=32, "
        f"efSearch={faiss.downcast_index(raw_index).hnsw.efSearch}), k 1, 5, 10, 20",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, faiss {faiss.__version__}, {THREADS} "
        f"threads; {args.runs} probe runs (Runner.run, SQLite store), raw interleaved",
        "",
        f"{'measurement':<46} {'raw s':>8} {'ragmon s':>8} {'ratio':>6} {'min ratio':>9}",
        f"{'first run (reads index + golden, no baseline)':<46} {raw_t[0]:>8.3f} "
        f"{probe_t[0]:>8.3f} {probe_t[0] / raw_t[0]:>6.3f}",
        f"{'steady runs, median of ' + str(args.runs - 1):<46} {steady_raw:>8.3f} "
        f"{steady_probe:>8.3f} {ratio:>6.3f} {min_ratio:>9.3f}",
        "",
        f"full probe / (raw live + exact search at k={K}), medians: {ratio:.3f}x; target <= "
        f"{TARGET:.1f}x: {'met' if ratio <= TARGET else 'NOT met'}",
        f"probe time outside the target's search calls (steady runs, median): {own_s:.3f} s "
        f"({own_s / len(queries) * 1000:.3f} ms per query), of which storing the run "
        f"(1,000 query rows, SQLite) {store_s:.3f} s",
        f"on an idle machine, (fastest raw + that time) / fastest raw: {idle:.3f}x",
        ab,
        f"cProfile of one steady run (in-thread; inflates Python time): {own:.3f} s of "
        f"{profiled:.3f} s outside FAISS's C++ calls",
        f"all runs: raw {', '.join(f'{t:.2f}' for t in raw_t)} s; probe "
        f"{', '.join(f'{t:.2f}' for t in probe_t)} s",
        f"run statuses: {', '.join(statuses)}; last verdict "
        f"{(last.details or {}).get('verdict')}; live recall@10 "
        f"{value('recall_ratio', k=10, mode='live')}, "
        f"exact recall@10 {value('recall_ratio', k=10, mode='exact')}, fidelity@10 "
        f"{value('index_fidelity_ratio', k=10)}",
        f"peak RSS (getrusage ru_maxrss): {peak_rss_mib():,.0f} MiB; VmRSS before loading "
        f"{rss0:,.0f} MiB, +{rss_raw - rss0:,.0f} MiB raw index, "
        f"+{rss_probe - rss_before_probe:,.0f} MiB over the probe runs (its index copy "
        "included)",
    ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    out = RESULTS if args.n is None else RESULTS.with_name(f"recall_overhead_{args.n}.txt")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    if args.profile or ratio > TARGET:
        print(profile)


if __name__ == "__main__":
    main()
