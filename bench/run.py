"""Benchmark of ragmon's drift tests against alibi-detect and Evidently, in one run, on the
same real windows (MiniLM embeddings of stdlib docstring chunks, d = 384).

    .venv/bin/python bench/run.py --peers .bench-venv/bin/python [--out bench/results.json]

The peers run in their own interpreter (``.bench-venv``: ``pip install torch==2.13.0``
then ``pip install 'alibi-detect[torch]' evidently``); ragmon never depends on them.
alibi-detect is BSL-licensed: a peer to measure against, never shipped. Every peer call
runs in a fresh process reading the same .npy windows, and times the test alone.

Windows: the corpus has 2,561 chunks, fewer than the windows need, so windows are drawn
with replacement from its pool (the non-asyncio chunks); "drift" windows replace 20% of
the current window by asyncio chunks. Both tools get identical arrays, so the
comparison is fair; duplicates change neither tool's cost. The MMD comparison runs each
tool's first call in a fresh process (bench/mmd_vs_alibi.py).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAGMON_CACHE_DIR", str(REPO / ".cache"))


def corpus_windows() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from _stdlib import stdlib_embeddings

    _, corpus, vectors = stdlib_embeddings()
    topics = np.array([c.topic for c in corpus])
    return vectors, np.flatnonzero(topics != "asyncio"), np.flatnonzero(topics == "asyncio")


def make_pair(vectors: np.ndarray, pool: np.ndarray, topic: np.ndarray, n: int,
              drift: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = vectors[rng.choice(pool, n)]
    k = n // 5 if drift else 0
    cur = vectors[np.concatenate([rng.choice(pool, n - k), rng.choice(topic, k)])]
    return ref, cur


def peer(python: str, task: str, ref: np.ndarray, cur: np.ndarray, tmp: Path,
         **params: Any) -> dict[str, Any]:
    np.save(tmp / "ref.npy", ref)
    np.save(tmp / "cur.npy", cur)
    cmd = [python, str(REPO / "bench" / "peers.py"), task, str(tmp / "ref.npy"),
           str(tmp / "cur.npy"), *(f"{k}={v}" for k, v in params.items())]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def ragmon_mmd(ref: np.ndarray, cur: np.ndarray, **kw: Any) -> dict[str, Any]:
    from ragmon.probes.drift.methods.mmd import mmd

    start = time.perf_counter()
    res = mmd(ref, cur, **kw)
    return {"seconds": time.perf_counter() - start, "p_value": res.p_value,
            "statistic": res.statistic, "kernel": res.details["kernel"],
            "null_std": res.details["null_std"]}


def mmd_vs_alibi(args: argparse.Namespace, data: tuple, tmp: Path) -> list[dict[str, Any]]:
    """Both tools' first call in a fresh process each, interleaved (bench/mmd_vs_alibi.py):
    a warm driver process against a cold peer overstated the speed-up."""
    sys.path.insert(0, str(REPO / "bench"))
    from mmd_vs_alibi import measure

    rows = []
    for row in measure(args.peers, args.sizes, repeats=2):
        m = row["median"]
        ours = {"seconds": m["ragmon_seconds"], "p_value": m["ragmon_p_value"],
                "import_s": m["ragmon_import_s"], "second_s": m["ragmon_second_s"]}
        theirs = ({"seconds": m["alibi_seconds"], "p_value": m["alibi_p_value"],
                   "import_s": m["alibi_import_s"], "second_s": m["alibi_second_s"]}
                  if "alibi_seconds" in m else {"error": "no --peers, or the peer failed"})
        out = {"n": row["n"], "drift": row["drift"], "ragmon": ours, "alibi": theirs}
        if "speedup_first_call" in m:
            out["speedup"] = m["speedup_first_call"]
        rows.append(out)
    return rows


def large_run(n: int, permutations: int) -> dict[str, Any]:
    """ragmon's MMD at n = m = ``n`` in a fresh process, with its peak RSS."""
    cmd = [sys.executable, __file__, "--one-large", str(n), "--permutations", str(permutations)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]), n=n)


def rff_accuracy(data: tuple, n: int) -> list[dict[str, Any]]:
    """The random-Fourier-feature statistic against the exact one on the same windows."""
    rows = []
    for drift in (False, True):
        ref, cur = make_pair(*data, n, drift, seed=7 + drift)
        exact = ragmon_mmd(ref, cur, permutations=200, max_exact=10**9)
        for features in (1024, 4096, 16384):
            approx = ragmon_mmd(ref, cur, permutations=200, max_exact=0, rff_features=features)
            rows.append({
                "n": n, "drift": drift, "features": features,
                "exact": exact["statistic"], "rff": approx["statistic"],
                "error_in_null_sd": (approx["statistic"] - exact["statistic"])
                / exact["null_std"],
                "p_exact": exact["p_value"], "p_rff": approx["p_value"],
                "seconds_exact": exact["seconds"], "seconds_rff": approx["seconds"],
            })
            print(json.dumps(rows[-1]), flush=True)
    return rows


def classifier_vs_evidently(args: argparse.Namespace, data: tuple, tmp: Path,
                            n: int, repeats: int) -> dict[str, Any]:
    from ragmon.probes.drift.methods.classifier import classifier

    out: dict[str, Any] = {"n": n, "repeats": repeats, "ragmon": {}, "evidently": {}}
    for drift in (False, True):
        ours, theirs = [], []
        for i in range(repeats):
            ref, cur = make_pair(*data, n, drift, seed=1000 + 2 * i + drift)
            start = time.perf_counter()
            res = classifier(ref, cur, seed=i)
            ours.append({"seconds": time.perf_counter() - start, "drifted": res.drifted,
                         "auc": res.statistic, "p_value": res.p_value})
            if args.peers:
                theirs.append(peer(args.peers, "evidently", ref, cur, tmp,
                                   full=int(i == 0)))
        key = "drift" if drift else "no_drift"
        out["ragmon"][key] = ours
        out["evidently"][key] = theirs
    print(json.dumps(out, default=str)[:2000], flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", default=None,
                        help="python of the venv with alibi-detect and evidently")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 5000])
    parser.add_argument("--large", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=10,
                        help="windows per condition in the classifier comparison")
    parser.add_argument("--out", default=str(REPO / "bench" / "results.json"))
    parser.add_argument("--one-large", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--permutations", type=int, default=100, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_large:  # the child process of large_run: measure this process's peak RSS
        ref, cur = make_pair(*corpus_windows(), args.one_large, True, seed=50)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out = ragmon_mmd(ref, cur, permutations=args.permutations)
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out["rss_before_mb"] = before
        print(json.dumps(out))
        return 0
    data = corpus_windows()
    results: dict[str, Any] = {"cpu_count": os.cpu_count(), "started": time.time()}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        results["mmd_vs_alibi"] = mmd_vs_alibi(args, data, tmp)
        results["large"] = large_run(args.large, 100)
        print(json.dumps(results["large"]), flush=True)
        results["rff_accuracy"] = rff_accuracy(data, 5000)
        results["classifier_vs_evidently"] = classifier_vs_evidently(args, data, tmp, 1000,
                                                                     args.repeats)
    results["peak_rss_mb_driver"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.out).write_text(json.dumps(results, indent=1, default=str))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
