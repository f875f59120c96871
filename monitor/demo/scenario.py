"""The demo's deployment: its config (written once), a real index of real text, its golden set.

The corpus is the standard library's docstrings chunked as a RAG pipeline would
(:mod:`monitor.demo.corpus`), embedded with the bundled MiniLM and indexed in a FAISS HNSW
file with a sidecar of chunk ids. ``golden.jsonl`` holds hand-written questions a user would
ask, judged by document (the part of a chunk id before ``#``).

``demo_config`` is what an operator would write; ``write_config`` writes it once and never
again, so edits survive. ``build_index`` builds the files it points at (once; rebuilt when
the corpus changes), each written under a temporary name and renamed into place, so an
interrupted build leaves nothing half-written.
"""

from __future__ import annotations

import os
import shutil
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ragmon.monitor.demo.progress import progress

if TYPE_CHECKING:
    import numpy as np

    from ragmon.monitor.plugins import Plugins

TARGET = "stdlib-docs"
INDEX_FILE = "index.faiss"
IDS_FILE = "index.ids"
HEALTHY_INDEX = "index.healthy.faiss"
GOLDEN_FILE = "golden.jsonl"
TRAFFIC_FILE = "traffic.jsonl"
CONFIG_FILE = "ragmon.yaml"
#: The efSearch stored in the healthy index file (the target config leaves it to the file).
EF_SEARCH = 64

HEADER = """\
# The config of `ragmon demo`, written once: edit it and run `ragmon demo` again (it is
# never overwritten), or run the daemon on it with `ragmon run -c {path}`.
# The listen port is chosen at each demo start and passed as RAGMON_SERVER__LISTEN.
"""

ALERT_RULES: dict[str, Any] = {
    "EmbeddingPipelineChanged": {
        "probe": "docs-recall", "verdict": ["embedding"], "severity": "critical",
        "summary": "query embeddings no longer match the index (verdict embedding)"},
    "IndexDegraded": {
        "probe": "docs-recall", "verdict": ["index"], "severity": "warning",
        "summary": "the ANN index lost results that exact search finds (verdict index)"},
    "ContentRot": {
        "probe": "docs-recall", "verdict": ["content"], "severity": "warning",
        "summary": "judged documents were deleted or changed (verdict content)"},
    "QueryTopicsMoved": {
        "probe": "query-drift", "field": "drift_alarm", "match": {"method": "mmd"},
        "condition": "== 1", "severity": "warning",
        "summary": "user questions moved away from the reference window"},
}


def demo_config(plugins: Plugins) -> dict[str, Any]:
    """The demo config: what an operator would write, matched to the kinds this install has."""
    config: dict[str, Any] = {
        "store": {"url": "sqlite:///ragmon.db"},
        "server": {"listen": "127.0.0.1:9464", "shutdown_grace": "10s"},
        "logging": {"level": "warning"},
        "embedders": {"minilm": {"kind": "sentence-transformers", "model": "all-MiniLM-L6-v2"}},
        "probes": {"canary": {"kind": "canary", "embedder": "minilm", "every": "1m",
                              "timeout": "2m"}},
    }
    if "faiss" not in plugins.targets:
        return config
    config["targets"] = {TARGET: {
        "kind": "faiss", "path": INDEX_FILE, "ids_path": IDS_FILE, "metric": "cosine",
        "embedder": "minilm",
    }}
    rules = {}
    if "recall" in plugins.probes:
        config["golden_sets"] = {"stdlib-questions": {"path": GOLDEN_FILE}}
        config["probes"]["docs-recall"] = {
            "kind": "recall", "target": TARGET, "golden_set": "stdlib-questions",
            "documents": {"separator": "#"}, "every": "5m", "timeout": "5m",
        }
        rules.update({k: v for k, v in ALERT_RULES.items() if v["probe"] == "docs-recall"})
    if "drift" in plugins.probes:
        # The app's questions, tailed from a JSONL file (and POST /ingest/query-drift): each
        # run is one window, compared with a pinned reference of the first windows.
        config["probes"]["query-drift"] = {
            "kind": "drift", "source": "queries", "target": TARGET, "window_size": 100,
            "min_samples": 50, "reference": {"mode": "pinned", "size": 400},
            "queries": {"jsonl": TRAFFIC_FILE, "http": True}, "every": "5m", "timeout": "5m",
        }
        rules["QueryTopicsMoved"] = ALERT_RULES["QueryTopicsMoved"]
    if rules:
        config["alerts"] = {"rules": rules}
    return config


def write_config(data_dir: Path, plugins: Plugins, port: int | None = None) -> tuple[Path, bool]:
    """The demo config file, written if it does not exist yet: (path, written now).

    ``port`` writes a listen address into a new file (for tests that start the daemon from
    the file alone); the demo itself passes its port by the environment.
    """
    path = data_dir / CONFIG_FILE
    if path.exists():
        return path, False
    config = demo_config(plugins)
    if port is not None:
        config["server"]["listen"] = f"127.0.0.1:{port}"
    text = HEADER.format(path=path) + yaml.safe_dump(config, sort_keys=False)
    atomic_write(path, text.encode())
    return path, True


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def prepare(data_dir: Path, out: Any) -> None:
    """The files the config points at: the golden set (copied when missing, so edits stay),
    the index and an empty traffic file."""
    golden = data_dir / GOLDEN_FILE
    if not golden.exists():
        atomic_write(golden, (files("ragmon.monitor.demo") / GOLDEN_FILE).read_bytes())
    (data_dir / TRAFFIC_FILE).touch()
    build_index(data_dir, out)


def corpus_vectors(out: Any) -> tuple[Any, np.ndarray]:
    """The corpus and its MiniLM embeddings (cached on disk), with a progress display."""
    from ragmon.monitor.demo.corpus import stdlib_corpus
    from ragmon.monitor.demo.embeddings import cached_encode
    from ragmon.monitor.embedders.sentence_transformers import (
        SentenceTransformerEmbedder,
        SentenceTransformersConfig,
    )

    chunks = stdlib_corpus()
    embedder = SentenceTransformerEmbedder(
        "minilm", SentenceTransformersConfig(kind="sentence-transformers"))
    texts = [c.text for c in chunks]
    with progress(out, f"embedding {len(texts)} chunks of standard-library docs",
                  len(texts)) as advance:
        vectors = cached_encode(embedder, texts, on_batch=advance)
    return chunks, vectors


def build_index(data_dir: Path, out: Any) -> None:
    """The FAISS HNSW index of the corpus and its ids (once per corpus)."""
    import numpy as np

    from ragmon.monitor.demo.corpus import corpus_digest, stdlib_corpus

    stamp = data_dir / "index.digest"
    digest = corpus_digest(stdlib_corpus())
    built = [data_dir / n for n in (INDEX_FILE, IDS_FILE, HEALTHY_INDEX)]
    if stamp.exists() and stamp.read_text() == digest and all(p.exists() for p in built):
        return
    chunks, vectors = corpus_vectors(out)
    write_index(data_dir / HEALTHY_INDEX, np.ascontiguousarray(vectors), out)
    atomic_write(data_dir / IDS_FILE, "".join(f"{c.id}\n" for c in chunks).encode())
    copy_atomic(data_dir / HEALTHY_INDEX, data_dir / INDEX_FILE)
    atomic_write(stamp, digest.encode())


def write_index(path: Path, vectors: np.ndarray, out: Any, ef_search: int = EF_SEARCH) -> None:
    """An HNSW index of ``vectors`` (inner product on unit vectors: cosine), written atomically."""
    import faiss

    index = faiss.IndexHNSWFlat(vectors.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
    index.hnsw.efSearch = ef_search
    step = 512
    with progress(out, f"building the HNSW index of {len(vectors)} vectors",
                  len(vectors)) as advance:
        for start in range(0, len(vectors), step):
            index.add(vectors[start:start + step])
            advance(min(step, len(vectors) - start))
    tmp = path.with_name(f".{path.name}.tmp")
    faiss.write_index(index, str(tmp))
    os.replace(tmp, path)


def copy_atomic(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
