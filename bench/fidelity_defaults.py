"""What index fidelity (tie-tolerant ANN-vs-exact recall@10) healthy FAISS indexes reach on
real embeddings: the figures behind the recall probe's default ``fidelity_floor``.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/fidelity_defaults.py

Data: MiniLM (all-MiniLM-L6-v2) embeddings of the stdlib docstring corpus (the test
suite's, ``monitor.demo``). Queries: the 65 hand-written golden questions of
tests/probes/recall/data, and 500 corpus chunks held out of the index (a query near the
data, as a user question about an indexed topic is). Each index is built over the other
chunks with inner product (MiniLM vectors are unit-norm, so it is cosine), and fidelity is
computed by ragmon's own ``query_fidelity`` against ``IndexFlatIP``. Writes the table to
bench/results/fidelity_defaults.txt. (FAISS warns that 2,061 points are few to train 256
PQ centroids: the PQ rows are what a small corpus gets.)
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "probes" / "recall" / "data" / "stdlib_golden.jsonl"
OUT = REPO / "bench" / "results" / "fidelity_defaults.txt"
K = 10
HELD_OUT = 500


def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indexed vectors, golden query vectors, held-out chunk vectors)."""
    os.environ.setdefault("RAGMON_CACHE_DIR", str(REPO / ".cache"))
    from _stdlib import stdlib_embeddings

    from ragmon.monitor.demo.embeddings import cached_encode

    minilm, _, vectors = stdlib_embeddings()
    questions = [json.loads(line)["query"] for line in GOLDEN.read_text().splitlines()]
    golden = cached_encode(minilm, questions)
    rng = np.random.default_rng(0)
    held = rng.choice(len(vectors), size=HELD_OUT, replace=False)
    mask = np.ones(len(vectors), dtype=bool)
    mask[held] = False
    return np.ascontiguousarray(vectors[mask]), golden, np.ascontiguousarray(vectors[held])


def _fidelity(index: Any, base: np.ndarray, queries: np.ndarray) -> tuple[float, float]:
    """(mean, 5th percentile) of per-query tie-tolerant recall@K."""
    import faiss

    from ragmon.probes.recall.fidelity import query_fidelity

    exact = faiss.IndexFlatIP(base.shape[1])
    exact.add(base)
    _, live = index.search(queries, K)
    _, truth = exact.search(queries, K)
    stored = {str(i): base[i] for i in range(len(base))}
    per_query = []
    for q, got, want in zip(queries, live, truth, strict=True):
        fid = query_fidelity(q, [str(i) for i in got if i >= 0], [str(i) for i in want],
                             stored, "ip", [K], 1e-6)
        per_query.append(fid.recall[K])
    return float(np.mean(per_query)), float(np.quantile(per_query, 0.05))


def _indexes(base: np.ndarray) -> list[tuple[str, Callable[[], Any]]]:
    import faiss

    d = base.shape[1]
    nlist = int(4 * math.sqrt(len(base)))  # the usual 4*sqrt(n) rule of thumb

    def hnsw(m: int, ef: int | None) -> Any:
        index = faiss.IndexHNSWFlat(d, m, faiss.METRIC_INNER_PRODUCT)
        index.add(base)
        if ef is not None:
            index.hnsw.efSearch = ef
        return index

    def ivf(nprobe: int, pq: int = 0, refine: int = 0) -> Any:
        quantizer = faiss.IndexFlatIP(d)
        index = (faiss.IndexIVFPQ(quantizer, d, nlist, pq, 8, faiss.METRIC_INNER_PRODUCT)
                 if pq else faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT))
        index.nprobe = nprobe
        if refine:  # re-rank the quantized candidates on the full vectors
            index = faiss.IndexRefineFlat(index)
            index.k_factor = refine
        index.train(base)
        index.add(base)
        return index

    return [
        ("HNSW M=32, FAISS defaults (efConstruction 40, efSearch 16)", lambda: hnsw(32, None)),
        ("HNSW M=16, efSearch 16", lambda: hnsw(16, 16)),
        ("HNSW M=32, efSearch 64", lambda: hnsw(32, 64)),
        ("HNSW M=8, efSearch 10 (under-tuned)", lambda: hnsw(8, 10)),
        ("HNSW M=8, efSearch 4 (degraded)", lambda: hnsw(8, 4)),
        *[(f"IVF-Flat nlist={nlist}, nprobe {p}", (lambda p=p: ivf(p))) for p in (1, 4, 8, 16)],
        (f"IVF-PQ nlist={nlist}, 48x8 bits, nprobe 16", lambda: ivf(16, pq=48)),
        (f"IVF-PQ nlist={nlist}, 96x8 bits, nprobe 16", lambda: ivf(16, pq=96)),
        (f"IVF-PQ nlist={nlist}, 48x8 bits, nprobe 16, re-ranked x4 (IndexRefineFlat)",
         lambda: ivf(16, pq=48, refine=4)),
    ]


def main() -> int:
    base, golden, held = _data()
    lines = [f"index fidelity (tie-tolerant recall@{K} against exact), stdlib corpus "
             f"{len(base)} chunks, MiniLM 384-d",
             "| index | golden questions (65): mean | p05 | held-out chunks (500): mean | p05 |",
             "|---|---|---|---|---|"]
    for name, build in _indexes(base):
        index = build()
        g_mean, g_p05 = _fidelity(index, base, golden)
        h_mean, h_p05 = _fidelity(index, base, held)
        lines.append(f"| {name} | {g_mean:.3f} | {g_p05:.2f} | {h_mean:.3f} | {h_p05:.2f} |")
        print(lines[-1], flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"written to {OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
