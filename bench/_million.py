"""Build and cache the 1,000,000 x 384 FAISS HNSW index both overhead benchmarks use.

    .venv/bin/python bench/_million.py        # build (or report) the cached data set

The data are synthetic: real text cannot yield a million embeddings on this machine, so the
vectors come from a clustered distribution (thousands of topics, as in a real corpus) rather
than isotropic noise, on which every vector is about equally far from every other and an
HNSW graph behaves like on no real data. 4,000 unit-norm Gaussian cluster centres are
drawn; each vector is a centre plus Gaussian noise of about the centre's length,
normalised, so a vector's cosine to its centre is around 0.7, to another member of its
cluster around 0.5 and to an unrelated vector around 0. The 1,000 query vectors come from
the same distribution (a separate seed), like golden queries about indexed content.
Members of a cluster are nearly equidistant, which makes this a hard set for HNSW
(efSearch 64 finds about 72% of the true top 10); that does not matter for the overhead
benchmarks, where ragmon and raw FAISS run the same searches.

The index is ``IndexHNSWFlat(384, M=32, METRIC_INNER_PRODUCT)`` over the normalised vectors,
built with FAISS's own threads (2 on this machine) and efConstruction=40 (FAISS's default;
the build time is recorded in ``meta.json``). Vector positions are the document ids, so no
ids sidecar is written.

Everything is cached under ``.cache/bench/million/`` (git-ignored) and rebuilt only when a
file is missing or the recorded parameters differ; files are written under a temporary name
and renamed, so an interrupted build never leaves a half-written index behind.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

N, DIM, N_QUERIES = 1_000_000, 384, 1_000
CENTRES, NOISE = 4_000, 1.0 / np.sqrt(DIM)  # noise vector of about unit length
M, EF_CONSTRUCTION, EF_SEARCH = 32, 40, 64
THREADS = 2
CHUNK = 50_000

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "bench" / "million"
PARAMS = {"n": N, "dim": DIM, "queries": N_QUERIES, "centres": CENTRES, "noise": float(NOISE),
          "M": M, "efConstruction": EF_CONSTRUCTION, "efSearch": EF_SEARCH, "seed": 0}


@dataclass(frozen=True)
class Million:
    """Paths of the cached files, and what the build recorded."""

    vectors: Path  # (N, DIM) float32 .npy, unit rows, row i = document id str(i)
    queries: Path  # (N_QUERIES, DIM) float32 .npy, unit rows
    index: Path  # faiss.write_index of the HNSW index
    meta: dict

    def load_vectors(self) -> np.ndarray:
        """The stored vectors, memory-mapped (pages are read on first touch)."""
        return np.load(self.vectors, mmap_mode="r")

    def load_queries(self) -> np.ndarray:
        return np.load(self.queries)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _draw(rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    which = rng.integers(0, len(centres), size=n)
    noise = rng.standard_normal((n, DIM), dtype=np.float32) * np.float32(NOISE)
    return _unit(centres[which] + noise)


def _write_npy(path: Path, fill: callable, shape: tuple[int, int]) -> None:  # type: ignore[valid-type]
    tmp = path.with_suffix(".tmp.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
    fill(out)
    out.flush()
    del out
    os.replace(tmp, path)


def build(log: callable = print) -> Million:  # type: ignore[valid-type]
    """The cached data set, built first if missing or built with other parameters."""
    import faiss

    CACHE.mkdir(parents=True, exist_ok=True)
    paths = {name: CACHE / file for name, file in (
        ("vectors", "vectors.npy"), ("queries", "queries.npy"), ("index", "hnsw.faiss"))}
    meta_path = CACHE / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if meta.get("params") == PARAMS and all(p.exists() for p in paths.values()):
        return Million(meta=meta, **paths)

    faiss.omp_set_num_threads(THREADS)
    rng = np.random.default_rng(PARAMS["seed"])
    centres = _unit(rng.standard_normal((CENTRES, DIM), dtype=np.float32))
    start = time.perf_counter()

    def fill_vectors(out: np.ndarray) -> None:
        for lo in range(0, N, CHUNK):
            out[lo:lo + CHUNK] = _draw(rng, centres, min(CHUNK, N - lo))

    _write_npy(paths["vectors"], fill_vectors, (N, DIM))
    query_rng = np.random.default_rng(PARAMS["seed"] + 1)
    _write_npy(paths["queries"], lambda out: out.__setitem__(
        slice(None), _draw(query_rng, centres, N_QUERIES)), (N_QUERIES, DIM))
    generate_s = time.perf_counter() - start
    log(f"generated {N:,} x {DIM} vectors in {generate_s:.1f}s")

    vectors = np.load(paths["vectors"], mmap_mode="r")
    index = faiss.IndexHNSWFlat(DIM, M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = EF_CONSTRUCTION
    index.hnsw.efSearch = EF_SEARCH
    start = time.perf_counter()
    for lo in range(0, N, 4 * CHUNK):
        index.add(np.ascontiguousarray(vectors[lo:lo + 4 * CHUNK]))
        log(f"  added {index.ntotal:,} ({time.perf_counter() - start:.0f}s)")
    build_s = time.perf_counter() - start
    tmp = paths["index"].with_suffix(".tmp")
    faiss.write_index(index, str(tmp))
    os.replace(tmp, paths["index"])
    log(f"built HNSW (M={M}, efConstruction={EF_CONSTRUCTION}) in {build_s:.1f}s "
        f"with {THREADS} threads")

    meta = {"params": PARAMS, "generate_seconds": round(generate_s, 1),
            "build_seconds": round(build_s, 1), "threads": THREADS,
            "faiss": faiss.__version__}
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return Million(meta=meta, **paths)


if __name__ == "__main__":
    million = build()
    print(json.dumps(million.meta, indent=2))
