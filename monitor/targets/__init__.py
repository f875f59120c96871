"""Vector index targets: one protocol (``abc.VectorTarget``), one module per engine,
one registry keyed by the config ``kind``.

Importing this package imports the config models only; each engine's client is imported
when a target of that kind is first built, and a missing client is reported at config
load with the ``pip install 'ragmon[extra]'`` line that fixes it.
"""

from __future__ import annotations

from typing import Any

from ragmon.monitor.kinds import KindSpec, Registry
from ragmon.monitor.targets.abc import Description, SearchResult, Vectors, VectorTarget
from ragmon.monitor.targets.chroma import ChromaConfig, ChromaTarget
from ragmon.monitor.targets.faiss import FaissConfig, FaissTarget
from ragmon.monitor.targets.http import HttpConfig, HttpTarget
from ragmon.monitor.targets.lancedb import LanceDBConfig, LanceDBTarget
from ragmon.monitor.targets.pgvector import PgvectorConfig, PgvectorTarget
from ragmon.monitor.targets.qdrant import QdrantConfig, QdrantTarget

TARGET_KINDS: Registry[VectorTarget] = Registry("target", [
    KindSpec("faiss", FaissTarget, FaissConfig, None, ("faiss",)),
    KindSpec("pgvector", PgvectorTarget, PgvectorConfig, "pgvector", ("psycopg", "pgvector")),
    KindSpec("qdrant", QdrantTarget, QdrantConfig, "qdrant", ("qdrant_client",)),
    KindSpec("chroma", ChromaTarget, ChromaConfig, "chroma", ("chromadb",)),
    KindSpec("lancedb", LanceDBTarget, LanceDBConfig, "lancedb", ("lancedb",)),
    KindSpec("http", HttpTarget, HttpConfig, "http", ("httpx",)),
])


def build_target(name: str, config: Any) -> VectorTarget:
    """The adapter for ``config.kind`` (its client is imported when first used)."""
    return TARGET_KINDS.build(config.kind, name, config)


__all__ = [
    "TARGET_KINDS", "Description", "SearchResult", "VectorTarget", "Vectors", "build_target",
]
