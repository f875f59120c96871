"""Real windows for the drift tests: MiniLM embeddings of stdlib docstring chunks.

The topic of a chunk is its module, so drawing windows from one pool gives "no drift",
and mixing in one held-out module (asyncio, the largest) gives a real topic-mix shift.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
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

INJECTED_TOPIC = "asyncio"


@dataclass(frozen=True)
class Windows:
    """The corpus vectors split into a no-drift pool and one held-out topic."""

    vectors: np.ndarray
    texts: list[str]
    topics: np.ndarray
    pool: np.ndarray  # row numbers of every chunk not of INJECTED_TOPIC
    topic_rows: np.ndarray  # row numbers of the INJECTED_TOPIC chunks
    topic: str = INJECTED_TOPIC

    def null_pair(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Two disjoint windows of n rows from the same pool (row numbers)."""
        rows = rng.choice(self.pool, 2 * n, replace=False)
        return rows[:n], rows[n:]

    def injected_pair(
        self, n: int, share: float, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """A pool reference and a current window with ``share`` of it from the held-out topic."""
        k = int(round(n * share))
        rows = rng.choice(self.pool, 2 * n - k, replace=False)
        injected = rng.choice(self.topic_rows, k, replace=False)
        return rows[:n], np.concatenate([rows[n:], injected])


@pytest.fixture(scope="session")
def windows(corpus, corpus_vectors) -> Windows:  # type: ignore[no-untyped-def]
    topics = np.array([c.topic for c in corpus])
    return Windows(
        vectors=np.asarray(corpus_vectors, dtype=np.float32),
        texts=[c.text for c in corpus],
        topics=topics,
        pool=np.flatnonzero(topics != INJECTED_TOPIC),
        topic_rows=np.flatnonzero(topics == INJECTED_TOPIC),
    )


PROBE = "queries-drift"


class DriftEnv:
    """A deployment: a FAISS index of the pool (the injected topic is *not* indexed, so its
    queries are knowledge gaps), a YAML config loaded by ragmon's loader, a store, a runner.

    The session's MiniLM is handed to the context instead of being loaded again; the probe
    still calls the real embedder.
    """

    def __init__(self, tmp: Path, minilm: Any, windows: Windows, store_url: str | None = None,
                 **probe: Any):
        self.tmp = tmp
        self.windows = windows
        self.minilm = minilm
        self.store_url = store_url or f"sqlite:///{tmp / 'ragmon.db'}"
        ids = [str(i) for i in windows.pool]
        write_flat_index(tmp / "docs.faiss", windows.vectors[windows.pool], ids)
        self.probe: dict[str, Any] = {
            "kind": "drift", "source": "queries", "target": "docs", "every": "1h",
            "window_size": 400, "timeout": "120s",
            "queries": {"token": "s3cret-token", "jsonl": "queries.jsonl"},
        }
        self.probe.update(probe)
        self.store = Store(self.store_url)
        self.store.migrate()
        self.context: ProbeContext | None = None
        self.reload()

    def reload(self) -> None:
        if self.context is not None:
            self.context.close()
        config = {
            "store": {"url": self.store_url},
            "embedders": {"minilm": {"kind": "sentence-transformers",
                                     "model": "all-MiniLM-L6-v2"}},
            "targets": {"docs": {"kind": "faiss", "path": "docs.faiss", "ids_path": "docs.ids",
                                 "embedder": "minilm"}},
            "probes": {PROBE: self.probe},
        }
        path = self.tmp / "ragmon.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.config_path = path
        self.config = load_config(str(path))
        self.context = ProbeContext(self.config, self.store, self.config.plugins)
        self.context._embedders["minilm"] = self.minilm
        self.runner = Runner(self.context, CollectorRegistry(), self.context.plugins.probes)

    def items(self, rows: np.ndarray, with_vectors: bool = True) -> list[dict[str, Any]]:
        out = []
        for r in rows:
            item: dict[str, Any] = {"query": self.windows.texts[r], "id": str(r)}
            if with_vectors:
                item["vector"] = self.windows.vectors[r].tolist()
            out.append(item)
        return out

    def run_probe(self, name: str = PROBE) -> tuple[Any, int | None]:
        return self.runner.run(name)

    def close(self) -> None:
        if self.context is not None:
            self.context.close()
        self.store.close()


def write_flat_index(path: Path, vectors: np.ndarray, ids: list[str]) -> None:
    """An exact inner-product FAISS index with string ids in a sidecar file."""
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    faiss.write_index(index, str(path))
    path.with_suffix(".ids").write_text("\n".join(ids) + "\n", encoding="utf-8")


@pytest.fixture
def drift_env(tmp_path: Path, minilm: Any, windows: Windows) -> Iterator[DriftEnv]:
    env = DriftEnv(tmp_path, minilm, windows)
    yield env
    env.close()
