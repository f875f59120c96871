"""A real recall set-up: FAISS index files of MiniLM embeddings of the stdlib corpus (string
ids in a sidecar file), a YAML config loaded by ragmon's own loader, a SQLite store, and the
runner that stores each run.

The session's MiniLM (tests/conftest.py) is handed to each context instead of being loaded
again per test; that is only a speed-up, the probe still calls the real embedder.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from prometheus_client import CollectorRegistry

from ragmon.monitor.app import load_config
from ragmon.monitor.context import ProbeContext
from ragmon.monitor.runner import Runner
from ragmon.monitor.store import Store

GOLDEN = Path(__file__).parent / "data" / "stdlib_golden.jsonl"
PROBE = "docs-recall"


def write_index(path: Path, vectors: np.ndarray, ids: list[str], kind: str = "hnsw",
                int_ids: bool = False) -> None:
    """Build and atomically write an index (and its ids sidecar) the way an ingester would."""
    import faiss

    d = vectors.shape[1]
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, 8, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 40
        index.hnsw.efSearch = 64
    elif kind == "ivfpq":
        index = faiss.IndexIVFPQ(faiss.IndexFlatIP(d), d, 16, 8, 8, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
    else:
        index = faiss.IndexFlatIP(d)
    if int_ids:
        index = faiss.IndexIDMap2(index)
        index.add_with_ids(vectors, np.arange(len(vectors), dtype=np.int64))
    else:
        index.add(vectors)
    tmp = path.with_suffix(".tmp")
    faiss.write_index(index, str(tmp))
    if not int_ids:
        ids_tmp = path.with_suffix(".ids.tmp")
        ids_tmp.write_text("\n".join(ids) + "\n", encoding="utf-8")
        os.replace(ids_tmp, path.with_suffix(".ids"))
    os.replace(tmp, path)


class Env:
    """One deployment: config file, index file, store; ``run()`` is one scheduled run."""

    def __init__(self, tmp: Path, minilm: Any, corpus: Any, vectors: np.ndarray,
                 store_url: str | None = None):
        self.tmp = tmp
        self.store_url = store_url or f"sqlite:///{tmp / 'ragmon.db'}"
        self.minilm = minilm
        self.ids = [c.id for c in corpus]
        self.texts = [c.text for c in corpus]
        self.vectors = vectors
        self.index = tmp / "docs.faiss"
        self.golden = tmp / "golden.jsonl"
        shutil.copy(GOLDEN, self.golden)
        write_index(self.index, vectors, self.ids)
        self.target: dict[str, Any] = {"kind": "faiss", "path": "docs.faiss",
                                       "ids_path": "docs.ids", "embedder": "minilm"}
        self.embedder: dict[str, Any] = {"kind": "sentence-transformers",
                                         "model": "all-MiniLM-L6-v2"}
        self.golden_set: dict[str, Any] = {"path": "golden.jsonl"}
        self.probe: dict[str, Any] = {"kind": "recall", "target": "docs", "golden_set": "stdlib",
                                      "timeout": "60s"}
        self.store = Store(self.store_url)
        self.store.migrate()
        self.context: ProbeContext | None = None
        self.model = minilm
        self.reload()

    def write_config(self) -> Path:
        config = {
            "store": {"url": self.store_url},
            "embedders": {"minilm": self.embedder},
            "targets": {"docs": self.target},
            "golden_sets": {"stdlib": self.golden_set},
            "probes": {PROBE: self.probe, "canary": {"kind": "canary", "embedder": "minilm"}},
        }
        path = self.tmp / "ragmon.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    def reload(self) -> None:
        """Apply config edits, as a restarted daemon would."""
        if self.context is not None:
            self.context.close()
        config = load_config(str(self.write_config()))
        self.context = ProbeContext(config, self.store, config.plugins)
        self.context._embedders["minilm"] = self.model
        self.runner = Runner(self.context, CollectorRegistry(), self.context.plugins.probes)

    def run(self, probe: str = PROBE) -> tuple[Any, int | None]:
        return self.runner.run(probe)

    def golden_doc_ids(self) -> list[str]:
        docs: set[str] = set()
        for line in self.golden.read_text().splitlines():
            docs.update(json.loads(line)["relevant"])
        return sorted(docs)

    def truncating_embedder(self, max_seq_length: int) -> Any:
        """The same model with a shorter truncation: a changed query pipeline."""
        from ragmon.monitor.embedders.sentence_transformers import (
            SentenceTransformerEmbedder,
            SentenceTransformersConfig,
        )

        cfg = SentenceTransformersConfig(kind="sentence-transformers", model="all-MiniLM-L6-v2",
                                         max_seq_length=max_seq_length)
        embedder = SentenceTransformerEmbedder("minilm", cfg)
        model = copy.deepcopy(self.minilm._load())
        model.max_seq_length = max_seq_length
        embedder._model = model
        return embedder

    def close(self) -> None:
        if self.context is not None:
            self.context.close()
        self.store.close()


@pytest.fixture
def env(tmp_path: Path, minilm: Any, corpus: Any, corpus_vectors: np.ndarray) -> Iterator[Env]:
    e = Env(tmp_path, minilm, corpus, corpus_vectors)
    yield e
    e.close()


@pytest.fixture
def any_store_env(
    tmp_path: Path, store_url: str, minilm: Any, corpus: Any, corpus_vectors: np.ndarray
) -> Iterator[Env]:
    """The same set-up on SQLite and on a real PostgreSQL."""
    e = Env(tmp_path, minilm, corpus, corpus_vectors, store_url)
    yield e
    e.close()
