"""What the demo watches beyond the canary: a real index of real text, and its golden set.

The corpus is the standard library's docstrings chunked as a RAG pipeline would
(:mod:`monitor.demo.corpus`), embedded with the bundled MiniLM and indexed in a FAISS HNSW
file with a sidecar of chunk ids. ``golden.jsonl`` holds hand-written questions a user would
ask, each judged against the chunks that answer it (grade 2: answers it, 1: helps).

``extend_config`` adds the target and the probes this install has kinds for; ``prepare``
builds the files they point at in the data folder (once; rebuilt when the corpus changes).
"""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragmon.monitor.plugins import Plugins

TARGET = "stdlib-docs"
INDEX_FILE = "index.faiss"
IDS_FILE = "index.ids"
GOLDEN_FILE = "golden.jsonl"


def extend_config(config: dict[str, Any], data_dir: Path, plugins: Plugins) -> None:
    """Add the FAISS target, the recall probe and an index drift probe when this install
    has those kinds."""
    if "faiss" not in plugins.targets:
        return
    config["targets"] = {TARGET: {
        "kind": "faiss", "path": INDEX_FILE, "ids_path": IDS_FILE, "metric": "cosine",
        "embedder": "minilm", "ef_search": 64,
    }}
    if "recall" in plugins.probes:
        config["golden_sets"] = {"stdlib-questions": {"path": GOLDEN_FILE}}
        config["probes"]["docs-recall"] = {
            "kind": "recall", "target": TARGET, "golden_set": "stdlib-questions",
            "every": "5m", "timeout": "5m",
        }
    if "drift" in plugins.probes:
        # Index contents against their own first sample: the first run captures the
        # reference, later runs test each new sample against it.
        config["probes"]["index-drift"] = {
            "kind": "drift", "source": "index", "target": TARGET, "window_size": 500,
            "every": "1h", "timeout": "5m",
        }


def prepare(config: dict[str, Any], data_dir: Path, out: Any) -> None:
    """Build the index and copy the golden set that the (raw) config points at."""
    if TARGET not in config.get("targets", {}):
        return
    if "golden_sets" in config:
        shutil.copyfile(str(files("ragmon.monitor.demo") / GOLDEN_FILE), data_dir / GOLDEN_FILE)
    build_index(data_dir, out)


def build_index(data_dir: Path, out: Any) -> None:
    import faiss
    import numpy as np

    from ragmon.monitor.demo.corpus import corpus_digest, stdlib_corpus
    from ragmon.monitor.demo.embeddings import cached_encode
    from ragmon.monitor.embedders.sentence_transformers import (
        SentenceTransformerEmbedder,
        SentenceTransformersConfig,
    )

    chunks = stdlib_corpus()
    stamp = data_dir / "index.digest"
    digest = corpus_digest(chunks)
    if stamp.exists() and stamp.read_text() == digest and (data_dir / INDEX_FILE).exists():
        return
    print(f"ragmon demo: embedding {len(chunks)} chunks of standard-library docs and "
          "building a FAISS HNSW index (once; cached)", file=out)
    embedder = SentenceTransformerEmbedder(
        "minilm", SentenceTransformersConfig(kind="sentence-transformers"))
    vectors = np.ascontiguousarray(cached_encode(embedder, [c.text for c in chunks]))
    index = faiss.IndexHNSWFlat(vectors.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
    index.add(vectors)
    faiss.write_index(index, str(data_dir / INDEX_FILE))
    (data_dir / IDS_FILE).write_text("".join(f"{c.id}\n" for c in chunks))
    stamp.write_text(digest)
