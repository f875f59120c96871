"""ragmon's FAISS adapter against the same raw FAISS calls, 1,000 queries on 1,000,000 x 384.

    .venv/bin/python bench/index_overhead.py

Options: ``--repeats N`` (live searches, default 5), ``--exact-repeats N`` (default 3),
``--profile`` (print a cProfile of the adapter's calls). Writes the table to
bench/results/index_overhead.txt. The first run builds the data set (bench/_million.py:
clustered synthetic vectors, HNSW M=32, cached under .cache/bench/).

The adapter is built the way a user's config builds it: a ``FaissConfig`` validated from a
config mapping and ``build_target`` (the ``TARGET_KINDS["faiss"]`` registry entry). The raw
side opens the same file with ``faiss.read_index`` and makes the calls the adapter makes:

- live search: the adapter searches one query at a time (it reports per-query latency), so
  the fair baseline is the same ``index.search(q[None, :], k)`` loop; the batched call
  ``index.search(queries, k)`` is shown for information only;
- exact search: ``faiss.knn`` over the index's flat storage (read in place, as the adapter
  does), against ``FaissTarget.exact_search``.

Each measurement is repeated (raw and adapter interleaved, so load from other processes on
the machine hits both alike) and the median is reported. FAISS uses its own OpenMP threads
(2). Both sides' results are compared id for id, so a fast but wrong adapter cannot pass.
Peak RSS is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (the process's high-water mark,
equal to /proc/self/status VmHWM); the process holds two copies of the index (raw and the
adapter's), so the VmRSS growth of each load is shown as well.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import resource
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _million import THREADS, build  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "index_overhead.txt"
KS = (10, 20)  # 10, and 20: the largest k the recall probe searches by default
TARGET = 1.10


def vm_rss_mib() -> float:
    """Current resident set size (VmRSS) of this process, MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def interleaved(raw: Callable[[], Any], adapter: Callable[[], Any],
                repeats: int) -> tuple[list[float], list[float]]:
    """Seconds of ``raw`` and of ``adapter``, run alternately ``repeats`` times."""
    raw_t, ada_t = [], []
    for _ in range(repeats):
        raw_t.append(timed(raw)[0])
        ada_t.append(timed(adapter)[0])
    return raw_t, ada_t


def outside_faiss(fn: Callable[[], Any]) -> tuple[float, float]:
    """(seconds outside FAISS's C++ calls, total seconds) of ``fn`` under cProfile.

    A wall-clock ratio on a shared machine moves with other processes' load; the time spent
    in Python around the FAISS calls does not, so it measures the adapter's own cost
    directly (cProfile slows the Python side a little, so this errs on the high side).
    """
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    total = max(ct for (_, _, _), (_, _, _, ct, _) in stats.items())
    in_faiss = sum(tt for (file, _, func), (_, _, tt, _, _) in stats.items()
                   if "_swigfaiss" in func or "_swigfaiss" in file)
    return total - in_faiss, total


def raw_per_query(index: Any, queries: np.ndarray, k: int) -> list[np.ndarray]:
    """The adapter's live-search calls without the adapter: one query per call."""
    return [index.search(q[None, :], k)[1][0] for q in queries]


def flat_view(index: Any) -> np.ndarray:
    """The vectors an HNSWFlat index stores, read in place (no copy)."""
    import faiss

    storage = faiss.downcast_index(index.storage)
    return faiss.rev_swig_ptr(storage.get_xb(), index.ntotal * index.d).reshape(
        index.ntotal, index.d)


def profile_adapter(target: Any, queries: np.ndarray, k: int) -> str:
    """cProfile of one adapter live search and one exact search: where the time goes."""
    prof = cProfile.Profile()
    prof.enable()
    target.search(queries, k)
    target.exact_search(queries, k)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(15)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="live-search repeats")
    parser.add_argument("--exact-repeats", type=int, default=3, help="exact-search repeats")
    parser.add_argument("--profile", action="store_true",
                        help="also print a cProfile of the adapter calls")
    args = parser.parse_args()

    import faiss

    from ragmon.monitor.targets import TARGET_KINDS, build_target

    million = build()
    faiss.omp_set_num_threads(THREADS)
    queries = million.load_queries()
    rss0 = vm_rss_mib()

    load_raw, raw_index = timed(lambda: faiss.read_index(str(million.index)))
    rss_raw = vm_rss_mib()
    config = TARGET_KINDS["faiss"].params.model_validate(
        {"kind": "faiss", "path": str(million.index)})
    target = build_target("bench", config)
    load_ada, _ = timed(target.count)  # the first call reads the file
    rss_ada = vm_rss_mib()
    xb = flat_view(raw_index)

    rows: list[tuple[str, list[float], list[float] | None]] = [
        ("load index file (once)", [load_raw], [load_ada])]
    agree = True
    for k in KS:
        raw_ids = raw_per_query(raw_index, queries, k)  # warm both before timing
        ada = target.search(queries, k)
        agree &= all([str(i) for i in r[r >= 0]] == a for r, a in zip(raw_ids, ada.ids,
                                                                       strict=True))
        raw_t, ada_t = interleaved(lambda k=k: raw_per_query(raw_index, queries, k),
                                   lambda k=k: target.search(queries, k), args.repeats)
        rows.append((f"live search k={k}, per query", raw_t, ada_t))
        batched = [timed(lambda k=k: raw_index.search(queries, k))[0]
                   for _ in range(args.repeats)]
        rows.append((f"live search k={k}, raw batched (info)", batched, None))
    for k in KS:
        _, raw_pos = faiss.knn(queries, xb, k, metric=faiss.METRIC_INNER_PRODUCT)
        ada = target.exact_search(queries, k)
        agree &= all([str(i) for i in r] == a for r, a in zip(raw_pos, ada.ids, strict=True))
        raw_t, ada_t = interleaved(
            lambda k=k: faiss.knn(queries, xb, k, metric=faiss.METRIC_INNER_PRODUCT),
            lambda k=k: target.exact_search(queries, k), args.exact_repeats)
        rows.append((f"exact search k={k}", raw_t, ada_t))

    med = statistics.median
    timed_rows = [(r[1], r[2]) for r in rows[1:] if r[2] is not None]
    raw_sum = sum(med(r) for r, _ in timed_rows)
    ada_sum = sum(med(a) for _, a in timed_rows)
    raw_min, ada_min = sum(min(r) for r, _ in timed_rows), sum(min(a) for _, a in timed_rows)
    ratio = ada_sum / raw_sum
    own, profiled = outside_faiss(lambda: [
        (target.search(queries, k), target.exact_search(queries, k)) for k in KS])
    lines = [
        f"ragmon FAISS adapter vs raw FAISS: {len(queries):,} queries, "
        f"{raw_index.ntotal:,} x {raw_index.d} IndexHNSWFlat (M=32, efSearch="
        f"{faiss.downcast_index(raw_index).hnsw.efSearch}), inner product",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, faiss {faiss.__version__}, {THREADS} "
        f"threads; medians (and minima) of {args.repeats} (live) / {args.exact_repeats} "
        "(exact) interleaved runs",
        "",
        f"{'measurement':<38} {'raw s':>8} {'ragmon s':>8} {'ratio':>6} {'min ratio':>9}",
    ]
    for name, raw_t, ada_t in rows:
        if ada_t is None:
            lines.append(f"{name:<38} {med(raw_t):>8.3f}")
        else:
            lines.append(f"{name:<38} {med(raw_t):>8.3f} {med(ada_t):>8.3f} "
                         f"{med(ada_t) / med(raw_t):>6.3f} {min(ada_t) / min(raw_t):>9.3f}")
    lines.append(f"{'live + exact, both k (sum)':<38} {raw_sum:>8.3f} {ada_sum:>8.3f} "
                 f"{ratio:>6.3f} {ada_min / raw_min:>9.3f}")
    lines += [
        "",
        f"overhead (live + exact, medians): {ratio:.3f}x raw; target <= {TARGET:.2f}x: "
        f"{'met' if ratio <= TARGET else 'NOT met'}",
        f"ragmon's own time outside FAISS calls (cProfile, live + exact, both k): "
        f"{own:.3f} s of {profiled:.3f} s = {100 * own / profiled:.2f}%",
        f"results identical to raw FAISS (ids, every query, every k): {agree}",
        f"peak RSS (getrusage ru_maxrss): {peak_rss_mib():,.0f} MiB; VmRSS before loading "
        f"{rss0:,.0f} MiB, +{rss_raw - rss0:,.0f} MiB raw index, "
        f"+{rss_ada - rss_raw:,.0f} MiB adapter's index",
        f"data set: {million.meta.get('build_seconds')} s to build the index with "
        f"{million.meta.get('threads')} threads (bench/_million.py)",
    ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    if args.profile or ratio > TARGET:
        print(profile_adapter(target, queries, KS[-1]))


if __name__ == "__main__":
    main()
