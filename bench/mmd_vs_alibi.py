"""ragmon's MMD² against alibi-detect's MMDDrift as a user meets them: the first call in a
fresh process, with the import time measured apart, the two tools interleaved.

    .venv/bin/python bench/mmd_vs_alibi.py --peers .bench-venv/bin/python \
        [--sizes 1000 2000 4000] [--repeats 2]

writes bench/results/mmd_vs_alibi.json and prints the Markdown table of docs/benchmarks.md.

Each measurement is one new interpreter per tool: it imports the tool (timed: ``import_s``),
loads the same .npy windows, and times its first test (``seconds``: for alibi-detect the
detector's construction and ``predict``; for ragmon the ``mmd`` call), then a second
identical test in the same process (``second_s``, the warm figure a long-running daemon
gets). Within one window pair the tools alternate which runs first, so a change of load on
the shared machine hits both. Both get the same bandwidth (ragmon's median heuristic:
``sigma = sqrt(1 / (2 gamma))``), 100 permutations and 2 threads.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PERMUTATIONS = 100


def child(ref_path: str, cur_path: str, gamma: float) -> dict[str, Any]:
    """ragmon's side, run in a fresh interpreter: import, first call, second call."""
    start = time.perf_counter()
    sys.path.insert(0, str(REPO))
    from ragmon.probes.drift.methods.mmd import mmd

    import_s = time.perf_counter() - start
    ref, cur = np.load(ref_path), np.load(cur_path)
    times, res = [], None
    for _ in range(2):
        start = time.perf_counter()
        res = mmd(ref, cur, permutations=PERMUTATIONS, gamma=gamma, max_exact=10**9)
        times.append(time.perf_counter() - start)
    assert res is not None
    return {"import_s": import_s, "seconds": times[0], "second_s": times[1],
            "p_value": res.p_value, "statistic": res.statistic}


def run(cmd: list[str]) -> dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS="2", MKL_NUM_THREADS="2",
               OPENBLAS_NUM_THREADS="2")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, env=env)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def measure(peers: str | None, sizes: list[int], repeats: int,
            save: Any = None) -> list[dict[str, Any]]:
    """One row per (n, drift): every repeat of both tools, and their medians; ``save`` is
    called with the rows so far after each one (a long run keeps what it measured)."""
    sys.path.insert(0, str(BENCH))
    from run import corpus_windows, make_pair  # the same windows as bench/run.py

    from ragmon.probes.drift.methods.mmd import median_gamma

    data = corpus_windows()
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        ref_path, cur_path = f"{tmp_name}/ref.npy", f"{tmp_name}/cur.npy"
        for n in sizes:
            for drift in (False, True):
                ref, cur = make_pair(*data, n, drift, seed=n + drift)
                np.save(ref_path, ref)
                np.save(cur_path, cur)
                gamma = median_gamma(ref)
                sigma = float(np.sqrt(1.0 / (2.0 * gamma)))  # alibi: exp(-d²/(2σ²))
                ours = [sys.executable, __file__, "--child", ref_path, cur_path, repr(gamma)]
                theirs = [peers or "", str(BENCH / "peers.py"), "alibi_mmd", ref_path,
                          cur_path, f"sigma={sigma}", f"permutations={PERMUTATIONS}"]
                runs: dict[str, list[dict[str, Any]]] = {"ragmon": [], "alibi": []}
                for r in range(repeats):
                    order = [("ragmon", ours), ("alibi", theirs)]
                    for tool, cmd in order if r % 2 == 0 else order[::-1]:
                        if tool == "alibi" and not peers:
                            continue
                        runs[tool].append(run(cmd))
                rows.append(summarise(n, drift, runs))
                print(json.dumps(rows[-1]["median"]), flush=True)
                if save is not None:
                    save(rows)
    return rows


def summarise(n: int, drift: bool, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    med: dict[str, Any] = {"n": n, "drift": drift}
    for tool, got in runs.items():
        ok = [g for g in got if "seconds" in g]
        for key in ("import_s", "seconds", "second_s", "p_value"):
            if ok:
                med[f"{tool}_{key}"] = statistics.median(g[key] for g in ok)
    if "alibi_seconds" in med and "ragmon_seconds" in med:
        med["speedup_first_call"] = med["alibi_seconds"] / med["ragmon_seconds"]
        med["speedup_warm"] = med["alibi_second_s"] / med["ragmon_second_s"]
        med["speedup_with_imports"] = ((med["alibi_import_s"] + med["alibi_seconds"])
                                       / (med["ragmon_import_s"] + med["ragmon_seconds"]))
    return {"n": n, "drift": drift, "runs": runs, "median": med}


def table(rows: list[dict[str, Any]]) -> str:
    out = ["| n = m | windows | ragmon first call s | alibi-detect first call s | speed-up, "
           "first call | speed-up, warm (2nd call) | imports s (ragmon / alibi) | "
           "speed-up incl. imports | p ragmon / alibi |", "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        m = row["median"]
        if "speedup_first_call" not in m:
            continue
        out.append(
            f"| {m['n']:,} | {'20% injection' if m['drift'] else 'no drift'} | "
            f"{m['ragmon_seconds']:.2f} | {m['alibi_seconds']:.1f} | "
            f"{m['speedup_first_call']:.1f}× | {m['speedup_warm']:.1f}× | "
            f"{m['ragmon_import_s']:.1f} / {m['alibi_import_s']:.1f} | "
            f"{m['speedup_with_imports']:.1f}× | "
            f"{m['ragmon_p_value']:.3f} / {m['alibi_p_value']:.3f} |")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", default=None, help="python of the venv with alibi-detect")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(BENCH / "results" / "mmd_vs_alibi.json"))
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], float(args.child[2]))))
        return 0
    started = time.time()
    load = os.getloadavg()

    def save(rows: list[dict[str, Any]]) -> None:
        Path(args.out).write_text(json.dumps({
            "started": started, "seconds": time.time() - started, "loadavg_at_start": load,
            "loadavg_now": os.getloadavg(), "cpu_count": os.cpu_count(),
            "permutations": PERMUTATIONS, "repeats": args.repeats, "rows": rows,
        }, indent=1))

    rows = measure(args.peers, args.sizes, args.repeats, save)
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
