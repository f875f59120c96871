"""Vector index targets: one protocol (``abc.VectorTarget``), one module per engine,
one registry keyed by the config ``kind``.

Importing this package imports the config models only; each engine's client is imported
when a target of that kind is first built, and a missing client is reported at config
load with the ``pip install 'ragmon[extra]'`` line that fixes it.
"""

from __future__ import annotations

from typing import Any

from ragmon.monitor.targets.abc import Description, SearchResult, TargetSpec, Vectors, VectorTarget
from ragmon.monitor.targets.chroma import ChromaConfig
from ragmon.monitor.targets.faiss import FaissConfig
from ragmon.monitor.targets.http import HttpConfig
from ragmon.monitor.targets.lancedb import LanceDBConfig
from ragmon.monitor.targets.pgvector import PgvectorConfig
from ragmon.monitor.targets.qdrant import QdrantConfig

TARGET_KINDS: dict[str, TargetSpec] = {
    "faiss": TargetSpec(FaissConfig, "ragmon.monitor.targets.faiss:FaissTarget", None, ("faiss",)),
    "pgvector": TargetSpec(PgvectorConfig, "ragmon.monitor.targets.pgvector:PgvectorTarget",
                           "pgvector", ("psycopg", "pgvector")),
    "qdrant": TargetSpec(QdrantConfig, "ragmon.monitor.targets.qdrant:QdrantTarget", "qdrant",
                         ("qdrant_client",)),
    "chroma": TargetSpec(ChromaConfig, "ragmon.monitor.targets.chroma:ChromaTarget", "chroma",
                         ("chromadb",)),
    "lancedb": TargetSpec(LanceDBConfig, "ragmon.monitor.targets.lancedb:LanceDBTarget", "lancedb",
                          ("lancedb",)),
    "http": TargetSpec(HttpConfig, "ragmon.monitor.targets.http:HttpTarget", "http", ("httpx",)),
}


def build_target(name: str, config: Any) -> VectorTarget:
    """The adapter for ``config.kind``, its client imported now."""
    return TARGET_KINDS[config.kind].build(name, config)


__all__ = [
    "TARGET_KINDS", "Description", "SearchResult", "TargetSpec", "VectorTarget", "Vectors",
    "build_target",
]
