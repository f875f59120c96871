"""Chroma: a collection in a persistent directory (``path``) or on a Chroma server (``url``).

Live search is ``collection.query`` with the collection's own HNSW settings. Chroma has no
exact mode, so exact search is one client-side pass over every vector read back with
``get(include=["embeddings"])`` page by page (a filter is applied by ``where``), searched
for all queries a block of at most ``exact_memory`` at a time. Exact scores are converted to
Chroma's distances (``l2``: squared L2, ``ip``: 1 - dot, ``cosine``: 1 - cosine) so live and
exact scores are on one scale.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import numpy as np
from pydantic import Field, model_validator

from ragmon.monitor.config import ConfigPath, Secret, TargetConfig, config_error
from ragmon.monitor.errors import TargetError, TargetUnavailable
from ragmon.monitor.targets._exact import (
    DEFAULT_BLOCK,
    one_minus,
    regroup,
    rows_within,
    stream_exact,
)
from ragmon.monitor.targets._helpers import (
    ByteSize,
    check_filter,
    check_k,
    choose,
    engine_errors,
    timed_per_query,
    vectors_in_order,
)
from ragmon.monitor.targets.abc import Description, Metric, SearchResult, Vectors, VectorTarget

_SPACES: dict[str, Metric] = {"cosine": "cosine", "ip": "ip", "l2": "l2"}


class ChromaConfig(TargetConfig):
    """A Chroma collection (see docs/adapters.md)."""

    kind: Literal["chroma"]
    path: ConfigPath | None = Field(default=None, description="A PersistentClient directory "
                                    "(give this or `url`).")
    url: str | None = Field(default=None, description="A Chroma server, like "
                            "`http://chroma:8000` (give this or `path`).")
    collection: str = Field(description="Collection name.")
    headers: dict[str, Secret] = Field(default_factory=dict, description="HTTP headers for the "
                                       "server (auth); values are secrets.")
    filter_columns: list[str] = Field(default_factory=list, description="Metadata keys a probe "
                                      "may filter on (equality).")
    exact_memory: ByteSize = Field(
        default=DEFAULT_BLOCK, description="Size of one block of vectors in the client-side "
        "exact search; every vector is searched, a block at a time.")
    page_size: int = Field(default=1000, ge=1, description="Vectors read back per request.")

    @model_validator(mode="after")
    def _one_location(self) -> ChromaConfig:
        if (self.path is None) == (self.url is None):
            # an error type the config loader does not echo the input of: the entry may
            # hold secrets (api_key, headers)
            raise config_error(
                "target_location",
                "give exactly one of 'path' (a persistent directory) or 'url'",
            )
        return self


class ChromaTarget(VectorTarget):
    """Search one Chroma collection."""

    config: ChromaConfig

    def __init__(self, name: str, config: ChromaConfig):
        super().__init__(name, config)
        self.endpoint = (f"Chroma directory {str(config.path)!r}" if config.path is not None
                         else f"Chroma server at {config.url}")
        self._secrets = [s.get_secret_value() for s in config.headers.values()]
        self._client: Any = None
        self._collection: Any = None

    def _errors(self) -> Any:
        import httpx

        return engine_errors(self.name, self.endpoint, timeouts=(httpx.TimeoutException,),
                             unavailable=(httpx.TransportError,), timeout=self.config.timeout,
                             secrets=self._secrets)

    def _col(self) -> Any:
        if self._collection is None:
            self._client = self._connect()
            with self._errors():
                names = [c if isinstance(c, str) else c.name
                         for c in self._client.list_collections()]
                if self.config.collection not in names:
                    raise TargetError(self.name, f"collection {self.config.collection!r} does not "
                                      f"exist in {self.endpoint}; collections: "
                                      f"{', '.join(sorted(names)) or '(none)'}")
                self._collection = self._client.get_collection(self.config.collection)
        return self._collection

    def _connect(self) -> Any:
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False)
        cfg = self.config
        if cfg.path is not None:
            if not cfg.path.is_dir():
                raise TargetUnavailable(self.name, f"{self.endpoint} does not exist")
            with self._errors():
                return chromadb.PersistentClient(path=str(cfg.path), settings=settings)
        parts = urlsplit(cfg.url or "")
        headers = {k: v.get_secret_value() for k, v in cfg.headers.items()}
        try:
            default_port = 443 if parts.scheme == "https" else 8000
            return chromadb.HttpClient(host=parts.hostname or "127.0.0.1",
                                       port=parts.port or default_port,
                                       ssl=parts.scheme == "https", headers=headers,
                                       settings=settings)
        except Exception as exc:  # the client checks the server on construction
            raise TargetUnavailable(self.name, f"{self.endpoint} is unreachable: "
                                    f"{type(exc).__name__}") from exc

    def close(self) -> None:
        self._collection = None
        self._client = None

    # -- metadata --------------------------------------------------------------------------

    def _metric(self) -> Metric:
        col = self._col()
        hnsw = (getattr(col, "configuration", None) or {}).get("hnsw") or {}
        space = hnsw.get("space") or (col.metadata or {}).get("hnsw:space") or "l2"
        return _SPACES[space]

    def _dimension(self) -> int:
        """The stored vectors' dimension; 0 for an empty collection (nothing to check)."""
        with self._errors():
            got = self._col().get(limit=1, include=["embeddings"])
        embeddings = got.get("embeddings")
        return 0 if embeddings is None or len(embeddings) == 0 else len(embeddings[0])

    def _where(self, filter: dict[str, Any] | None) -> dict[str, Any] | None:
        where = check_filter(self.name, filter, self.config.filter_columns)
        if not where:
            return None
        terms = [{key: value} for key, value in where.items()]
        return terms[0] if len(terms) == 1 else {"$and": terms}

    def _queries(self, vectors: np.ndarray) -> np.ndarray:
        dimension = self._dimension()
        arr = np.asarray(vectors, dtype=np.float32)
        return self.check_queries(arr, dimension or (arr.shape[-1] if arr.ndim else 0))

    # -- protocol --------------------------------------------------------------------------

    def search(self, vectors: np.ndarray, k: int, filter: dict[str, Any] | None = None, *,
               texts: Sequence[str] | None = None) -> SearchResult:
        """``collection.query`` one query at a time, so each latency is a caller's latency."""
        k = check_k(self.name, k)
        queries = self._queries(vectors)
        where = self._where(filter)
        col = self._col()

        def one(query: np.ndarray) -> tuple[list[str], list[float]]:
            got = col.query(query_embeddings=query[None, :], n_results=k, where=where,
                            include=["distances"])
            return list(got["ids"][0]), [float(d) for d in got["distances"][0]]

        with self._errors():
            ids, scores, latencies = timed_per_query(queries, one)
        return SearchResult(ids, scores, latencies, exact=False)

    def exact_search(self, vectors: np.ndarray, k: int, filter: dict[str, Any] | None = None, *,
                     texts: Sequence[str] | None = None,
                     budget: float | None = None) -> SearchResult:
        """One client-side pass over every vector read back (``where`` applied by Chroma),
        for all queries at once, a block of at most ``exact_memory`` at a time."""
        k = check_k(self.name, k)
        queries = self._queries(vectors)
        where = self._where(filter)
        metric = self._metric()
        rows = rows_within(self.config.exact_memory, queries.shape[1])
        with self._errors():
            total = self._col().count() if where is None else len(self._all_ids(where))
            # FAISS similarity -> Chroma distance (1 - dot, 1 - cosine)
            return stream_exact(self.name, queries, k, metric, regroup(self._pages(where), rows),
                                total=total, budget=budget,
                                scale=None if metric == "l2" else one_minus)

    def _pages(self, where: dict[str, Any] | None) -> Iterator[tuple[list[str], np.ndarray]]:
        col, size, offset = self._col(), self.config.page_size, 0
        while True:
            got = col.get(where=where, limit=size, offset=offset, include=["embeddings"])
            if not got["ids"]:
                return
            yield list(got["ids"]), np.asarray(got["embeddings"], dtype=np.float32)
            offset += len(got["ids"])

    def _all_ids(self, where: dict[str, Any] | None = None) -> list[str]:
        col, size, offset = self._col(), self.config.page_size * 10, 0
        ids: list[str] = []
        while True:
            got = col.get(where=where, limit=size, offset=offset, include=[])
            if not got["ids"]:
                return ids
            ids.extend(got["ids"])
            offset += len(got["ids"])

    def fetch(self, ids: list[str]) -> Vectors:
        dimension = self._dimension()
        found: dict[str, np.ndarray] = {}
        with self._errors():
            for start in range(0, len(ids), self.config.page_size):
                got = self._col().get(ids=list(ids[start:start + self.config.page_size]),
                                      include=["embeddings"])
                found.update(zip(got["ids"], np.asarray(got["embeddings"], dtype=np.float32),
                                 strict=True))
        return vectors_in_order(ids, found, dimension)

    def document_ids(self, ids: Sequence[str], field: str) -> dict[str, str]:
        """The metadata key ``field`` of each record of ``ids`` (records without it: left
        out); a key no record read has is refused, with the keys they do have."""
        found: dict[str, str] = {}
        seen: set[str] = set()
        with self._errors():
            for start in range(0, len(ids), self.config.page_size):
                got = self._col().get(ids=list(ids[start:start + self.config.page_size]),
                                      include=["metadatas"])
                for key, meta in zip(got["ids"], got["metadatas"] or [], strict=True):
                    seen.update(meta or {})
                    if meta and meta.get(field) is not None:
                        found[key] = str(meta[field])
        if seen and field not in seen:
            raise TargetError(self.name, f"no record of collection {self.config.collection!r} "
                              f"read has the metadata key {field!r} to read documents from; "
                              f"keys found: {', '.join(sorted(seen))}")
        return found

    def sample(self, n: int, seed: int) -> Vectors:
        with self._errors():
            ids = self._all_ids()
        return self.fetch(choose(ids, n, seed))

    def count(self) -> int:
        with self._errors():
            return int(self._col().count())

    def describe(self) -> Description:
        import chromadb

        col = self._col()
        hnsw = dict((getattr(col, "configuration", None) or {}).get("hnsw") or {})
        params = {"collection": self.config.collection,
                  "hnsw": {k: v for k, v in hnsw.items() if isinstance(v, int | float | str)}}
        with self._errors():
            version = (chromadb.__version__ if self.config.path is not None
                       else str(self._client.get_version()))
            return Description("chroma", version, self._dimension(), self._metric(),
                               self.count(), "str", params)
