"""The domain classifier under float-precision changes and at a 10% injection, and whether the
label of the top grown cluster names the injected topic, on 50 windows each.

    .venv/bin/python bench/drift_precision_labels.py [--windows 50] [--out FILE]

Real windows: MiniLM (all-MiniLM-L6-v2) embeddings of the stdlib docstring corpus the test
suite uses, 500 rows each, disjoint rows drawn from the chunks of every module but the
injected one (`tests/probes/drift/conftest.py` draws them the same way). Two per-window
levels: 0.05, and 0.0215, the alpha the default alarm rule (2 of 3 windows, one false alarm
per 30 days, hourly) gives every method.

- Precision: the reference rounded to 7 decimals, or stored as float16, against a
  full-precision current window from the same pool (no drift): false alarms.
- Power: a current window with 10% (or 20%) of its rows from asyncio: detections by the
  classifier and, for comparison, by MMD.
- Labels: 20% of the current window from one module, new to the reference or grown from 2%
  of it. The label names the module when the module's name is a word of the first 70
  characters of the label, what `ragmon probe NAME --once` prints; "examples" counts the
  windows where most of the cluster's example texts are chunks of that module (before the
  change the examples were not the label's: they were chosen by witness, the label was the
  reference text nearest the centroid).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAGMON_CACHE_DIR", str(REPO / ".cache"))

N = 500
ALPHAS = (0.05, 0.0215)


def load() -> tuple[np.ndarray, list[str], np.ndarray]:
    from _stdlib import stdlib_embeddings

    _, corpus, vectors = stdlib_embeddings()
    return vectors, [c.text for c in corpus], np.array([c.topic for c in corpus])


def pair(topics: np.ndarray, topic: str, n: int, share: float, ref_share: float,
         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers of a reference with ``ref_share`` of ``topic`` and a current window with
    ``share`` of it; every other row from the other modules, no row in both."""
    pool = np.flatnonzero(topics != topic)
    own = rng.permutation(np.flatnonzero(topics == topic))
    k_ref, k_cur = round(n * ref_share), round(n * share)
    rows = rng.choice(pool, 2 * n - k_ref - k_cur, replace=False)
    ref = np.concatenate([rows[:n - k_ref], own[:k_ref]])
    cur = np.concatenate([rows[n - k_ref:], own[k_ref:k_ref + k_cur]])
    return ref, cur


def float16(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16).astype(np.float32)


def rounded_7(x: np.ndarray) -> np.ndarray:
    return np.round(x.astype(np.float64), 7).astype(np.float32)


def count(method: Callable[..., Any], vectors: np.ndarray, topics: np.ndarray, windows: int,
          share: float, lossy: Callable[[np.ndarray], np.ndarray], seed: int,
          **params: Any) -> dict[float, int]:
    """Windows the method calls drifted at each level (p-value <= alpha, its own rule)."""
    rng = np.random.default_rng(seed)
    hits = dict.fromkeys(ALPHAS, 0)
    for i in range(windows):
        ref, cur = pair(topics, "asyncio", N, share, 0.0, rng)
        for alpha in ALPHAS:
            res = method(lossy(vectors[ref]), vectors[cur], alpha=alpha, seed=i, **params)
            hits[alpha] += bool(res.drifted)
    return hits


def names(label: str | None, topic: str) -> bool:
    shown = (label or "")[:70].lower()
    return re.search(rf"(?<![\w.]){re.escape(topic)}(?![\w])", shown) is not None


def label_counts(vectors: np.ndarray, texts: list[str], topics: np.ndarray, topic: str,
                 windows: int, ref_share: float, seed: int) -> tuple[int, int]:
    from ragmon.probes.drift.methods.clusters import clusters

    rng = np.random.default_rng(seed)
    named = on_topic = 0
    for i in range(windows):
        ref, cur = pair(topics, topic, N, 0.2, ref_share, rng)
        res = clusters(vectors[ref], vectors[cur], texts=[texts[r] for r in cur],
                       ids=[str(r) for r in cur], reference_texts=[texts[r] for r in ref],
                       seed=i)
        top = res.details["grew"][0]
        named += names(top.get("label"), topic)
        rows = [int(e["id"]) for e in top["examples"]]
        on_topic += sum(topics[r] == topic for r in rows) * 2 > len(rows)
    return named, on_topic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=50)
    parser.add_argument("--out", default=str(REPO / "bench/results/drift_precision_labels.txt"))
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    from ragmon.probes.drift.methods.classifier import classifier
    from ragmon.probes.drift.methods.mmd import mmd

    vectors, texts, topics = load()
    w = args.windows
    lines = [f"windows of {N} rows, {w} windows per row; levels {ALPHAS}", ""]
    started = time.monotonic()
    with threadpool_limits(1):
        lines.append("| reference | method | current | drifted at 0.05 | at 0.0215 |")
        lines.append("|---|---|---|---|---|")
        for name, lossy in (("full precision", lambda x: x), ("rounded to 7 decimals",
                            rounded_7), ("float16", float16)):
            for share in (0.0, 0.1, 0.2):
                hits = count(classifier, vectors, topics, w, share, lossy, seed=40)
                lines.append(f"| {name} | classifier | {share:.0%} asyncio | "
                             f"{hits[0.05]}/{w} | {hits[0.0215]}/{w} |")
        for share in (0.0, 0.1):
            hits = count(classifier, vectors, topics, w, share, lambda x: x, seed=40,
                         auc_floor=0.55)
            lines.append(f"| full precision | classifier, auc_floor 0.55 | {share:.0%} asyncio | "
                         f"{hits[0.05]}/{w} | {hits[0.0215]}/{w} |")
        for share in (0.0, 0.1):
            hits = count(mmd, vectors, topics, w, share, lambda x: x, seed=40,
                         permutations=500)
            lines.append(f"| full precision | mmd | {share:.0%} asyncio | "
                         f"{hits[0.05]}/{w} | {hits[0.0215]}/{w} |")
        lines += ["", "| injected module | reference share | label names it | "
                  "label examples on topic |", "|---|---|---|---|"]
        for topic, ref_share in (("asyncio", 0.0), ("asyncio", 0.02), ("logging", 0.0),
                                 ("decimal", 0.0)):
            named, on_topic = label_counts(vectors, texts, topics, topic, w, ref_share, 50)
            lines.append(f"| {topic} | {ref_share:.0%} | {named}/{w} | {on_topic}/{w} |")
    lines += ["", f"{time.monotonic() - started:.0f} s"]
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
