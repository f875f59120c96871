"""Qdrant: a collection on a server (``url``) or in a local directory (``path``).

Live search is ``query_points`` with ``hnsw_ef`` as configured; exact search is the same
call with ``SearchParams(exact=True)`` and quantization ignored (``exact_mode: engine``, one
full scan per query), or one ``scroll`` over the stored vectors with the filter applied,
searched client-side for all queries (``stream``); ``auto`` picks the cheaper by estimated
cost. Either way ground truth is over the original vectors. Local mode (``path``) is
always a brute-force search inside the client: live search is already exact
(``always_exact``), so fidelity cannot be measured there and ``hnsw_ef`` has no effect.

Point ids are unsigned integers or UUIDs; ids that look like integers are sent as integers.
Scores are Qdrant's: similarity for Cosine and Dot (higher is better), distance for
Euclid. A collection with named vectors needs ``vector_name``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from ragmon.monitor.config import ConfigPath, Secret, TargetConfig, config_error
from ragmon.monitor.errors import TargetError, TargetUnavailable
from ragmon.monitor.targets._exact import (
    DEFAULT_BLOCK,
    Budget,
    Costs,
    ModeChoice,
    choose_mode,
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
    vectors_in_order,
)
from ragmon.monitor.targets.abc import Description, Metric, SearchResult, Vectors, VectorTarget

_METRICS: dict[str, Metric] = {"Cosine": "cosine", "Dot": "ip", "Euclid": "l2"}
#: An exact query per query, or one scroll of the vectors as JSON (seconds; see ``Costs``).
_COSTS = Costs(per_query=2e-3, engine_row=1e-7, read_row=2e-5, setup=5e-3)


class QdrantConfig(TargetConfig):
    """A Qdrant collection (see docs/adapters.md)."""

    kind: Literal["qdrant"]
    url: str | None = Field(default=None, description="A Qdrant server, like "
                            "`http://qdrant:6333` (give this or `path`).")
    path: ConfigPath | None = Field(default=None, description="A local-mode directory (always "
                                    "brute force: live equals exact).")
    api_key: Secret | None = Field(default=None, description="API key for the server (a "
                                   "secret).")
    collection: str = Field(description="Collection name.")
    vector_name: str | None = Field(default=None, description="Which named vector to search, "
                                    "for collections with several.")
    filter_columns: list[str] = Field(default_factory=list, description="Payload keys a probe "
                                      "may filter on (match value).")
    hnsw_ef: int | None = Field(default=None, ge=1, description="HNSW ef for live search; the "
                                "collection's default when unset (no effect in local mode).")
    exact_mode: ModeChoice = Field(default="auto", description="Ground truth by `engine` (an "
                                   "exact query per query), `stream` (one scroll of the "
                                   "vectors for all queries) or `auto`, the cheaper by "
                                   "estimated cost.")
    exact_memory: ByteSize = Field(default=DEFAULT_BLOCK, description="Size of one block of "
                                   "vectors in the streamed exact pass.")

    @model_validator(mode="after")
    def _one_location(self) -> QdrantConfig:
        if (self.path is None) == (self.url is None):
            # an error type the config loader does not echo the input of: the entry may
            # hold secrets (api_key, headers)
            raise config_error(
                "target_location",
                "give exactly one of 'url' (a Qdrant server) or 'path' (local mode)",
            )
        return self


class QdrantTarget(VectorTarget):
    """Search one Qdrant collection."""

    config: QdrantConfig

    def __init__(self, name: str, config: QdrantConfig):
        super().__init__(name, config)
        self.local = config.path is not None
        #: local mode is a brute-force scan inside the client: live search is exact
        self.always_exact = self.local
        self.endpoint = (f"Qdrant local directory {str(config.path)!r}" if self.local
                         else f"Qdrant at {config.url}")
        self._secrets = [config.api_key.get_secret_value()] if config.api_key else []
        self._client: Any = None
        self._info: Any = None

    def _errors(self) -> Any:
        import httpx
        from qdrant_client.http.exceptions import ResponseHandlingException

        return engine_errors(self.name, self.endpoint,
                             timeouts=(httpx.TimeoutException,),
                             unavailable=(httpx.TransportError, ResponseHandlingException),
                             timeout=self.config.timeout, secrets=self._secrets)

    def _qc(self) -> Any:
        from qdrant_client import QdrantClient

        if self._client is None:
            cfg = self.config
            if self.local and not cfg.path.is_dir():  # type: ignore[union-attr]
                raise TargetUnavailable(self.name, f"{self.endpoint} does not exist")
            with self._errors():
                if self.local:
                    # probes may share this target from several threads
                    client = QdrantClient(path=str(cfg.path),
                                          force_disable_check_same_thread=True)
                else:
                    client = QdrantClient(
                        url=cfg.url, timeout=max(1, int(cfg.timeout)), check_compatibility=False,
                        api_key=cfg.api_key.get_secret_value() if cfg.api_key else None)
                if not client.collection_exists(cfg.collection):
                    names = [c.name for c in client.get_collections().collections]
                    client.close()
                    raise TargetError(self.name, f"collection {cfg.collection!r} does not exist "
                                      f"in {self.endpoint}; collections: "
                                      f"{', '.join(sorted(names)) or '(none)'}")
            self._client = client
        return self._client

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None

    # -- metadata --------------------------------------------------------------------------

    def _vector_params(self) -> Any:
        with self._errors():
            info = self._qc().get_collection(self.config.collection)
        vectors = info.config.params.vectors
        if isinstance(vectors, dict):
            name = self.config.vector_name
            if name not in vectors:
                raise TargetError(self.name, f"collection {self.config.collection!r} has named "
                                  f"vectors {sorted(vectors)}; set vector_name to one of them")
            return info, vectors[name]
        return info, vectors

    def _filter(self, filter: dict[str, Any] | None) -> Any:
        from qdrant_client import models

        where = check_filter(self.name, filter, self.config.filter_columns)
        if not where:
            return None
        return models.Filter(must=[
            models.FieldCondition(key=key, match=models.MatchValue(value=value))
            for key, value in where.items()])

    # -- protocol --------------------------------------------------------------------------

    def search(self, vectors: np.ndarray, k: int, filter: dict[str, Any] | None = None, *,
               texts: Sequence[str] | None = None) -> SearchResult:
        """HNSW search with ``hnsw_ef`` (local mode: the client's brute force)."""
        return self._run(vectors, k, filter, exact=False)

    def exact_search(self, vectors: np.ndarray, k: int, filter: dict[str, Any] | None = None, *,
                     texts: Sequence[str] | None = None,
                     budget: float | None = None) -> SearchResult:
        """``SearchParams(exact=True)`` per query, quantization ignored, or one scroll of the
        original vectors for all queries: the true top-k either way."""
        k = check_k(self.name, k)
        _, params = self._vector_params()
        queries = self.check_queries(vectors, int(params.size))
        query_filter = self._filter(filter)
        with self._errors():
            total = int(self._qc().count(self.config.collection, count_filter=query_filter,
                                         exact=True).count)
        mode = choose_mode(self.config.exact_mode, _COSTS, queries=len(queries), total=total,
                           dimension=int(params.size))
        clock = Budget(self.name, budget, total=total, queries=len(queries))
        if mode == "engine":
            return self._run(vectors, k, filter, exact=True, clock=clock)
        metric = _METRICS[params.distance.value]
        rows = rows_within(self.config.exact_memory, int(params.size))
        with self._errors():  # squared L2 -> Qdrant's Euclid distance
            return stream_exact(
                self.name, queries, k, metric, regroup(self._scroll(query_filter), rows),
                total=total, budget=budget, scale=_root if metric == "l2" else None)

    def _scroll(self, query_filter: Any) -> Iterator[tuple[list[str], np.ndarray]]:
        offset, using = None, self.config.vector_name
        while True:
            points, offset = self._qc().scroll(
                self.config.collection, scroll_filter=query_filter, limit=1000, offset=offset,
                with_payload=False, with_vectors=[using] if using else True)
            vectors = [p.vector[using] if isinstance(p.vector, dict) else p.vector
                       for p in points]
            if points:
                yield [str(p.id) for p in points], np.asarray(vectors, dtype=np.float32)
            if offset is None:
                return

    def _run(self, vectors: np.ndarray, k: int, filter: dict[str, Any] | None,
             exact: bool, clock: Budget | None = None) -> SearchResult:
        from qdrant_client import models

        k = check_k(self.name, k)
        _, params = self._vector_params()
        queries = self.check_queries(vectors, int(params.size))
        query_filter = self._filter(filter)
        search_params = None
        if not self.local:  # local mode ignores search params (and warns about them)
            search_params = models.SearchParams(
                exact=exact, hnsw_ef=None if exact else self.config.hnsw_ef,
                quantization=models.QuantizationSearchParams(ignore=True) if exact else None)
        client, ids, scores, latencies = self._qc(), [], [], []
        with self._errors():
            for done, query in enumerate(queries, 1):
                start = time.perf_counter()
                got = client.query_points(
                    self.config.collection, query=query.tolist(), using=self.config.vector_name,
                    limit=k, query_filter=query_filter, search_params=search_params,
                    with_payload=False, with_vectors=False)
                latencies.append(time.perf_counter() - start)
                ids.append([str(p.id) for p in got.points])
                scores.append([float(p.score) for p in got.points])
                if clock is not None:
                    clock.check(clock.total, queries=done)
        return SearchResult(ids, scores, latencies, exact=exact or self.local,
                            exact_mode="engine" if exact or self.local else None,
                            scanned=clock.total if clock is not None else None)

    def fetch(self, ids: list[str]) -> Vectors:
        _, params = self._vector_params()
        keys = [key for key in map(_point_id, ids) if key is not None]
        found: dict[str, np.ndarray] = {}
        with self._errors():
            for start in range(0, len(keys), 1000):
                points = self._qc().retrieve(self.config.collection, ids=keys[start:start + 1000],
                                             with_payload=False, with_vectors=True)
                for point in points:
                    vector = point.vector
                    if isinstance(vector, dict):
                        vector = vector[self.config.vector_name]
                    found[str(point.id)] = np.asarray(vector, dtype=np.float32)
        return vectors_in_order(ids, found, int(params.size), key=lambda i: str(_point_id(i)))

    def document_ids(self, ids: Sequence[str], field: str) -> dict[str, str]:
        """The payload key ``field`` of each point of ``ids`` (points without it: left out);
        a key no point found has is refused, with the keys they do have."""
        wanted = {str(key): i for i in ids if (key := _point_id(i)) is not None}
        found: dict[str, str] = {}
        seen: set[str] = set()
        with self._errors():
            keys = [_point_id(i) for i in wanted.values()]
            for start in range(0, len(keys), 1000):
                points = self._qc().retrieve(self.config.collection, ids=keys[start:start + 1000],
                                             with_payload=True, with_vectors=False)
                for point in points:
                    payload = point.payload or {}
                    seen.update(payload)
                    if payload.get(field) is not None:
                        found[wanted[str(point.id)]] = str(payload[field])
        if seen and field not in seen:
            raise TargetError(self.name, f"no point of collection {self.config.collection!r} "
                              f"read has the payload key {field!r} to read documents from; "
                              f"keys found: {', '.join(sorted(seen))}")
        return found

    def _all_ids(self) -> list[str]:
        ids: list[str] = []
        offset = None
        with self._errors():
            while True:
                points, offset = self._qc().scroll(self.config.collection, limit=10_000,
                                                   offset=offset, with_payload=False,
                                                   with_vectors=False)
                ids.extend(str(p.id) for p in points)
                if offset is None:
                    return ids

    def sample(self, n: int, seed: int) -> Vectors:
        return self.fetch(choose(self._all_ids(), n, seed))

    def count(self) -> int:
        with self._errors():
            return int(self._qc().count(self.config.collection, exact=True).count)

    def describe(self) -> Description:
        import importlib.metadata

        info, params = self._vector_params()
        hnsw = info.config.hnsw_config
        details: dict[str, Any] = {
            "collection": self.config.collection, "mode": "local" if self.local else "server",
            "hnsw_ef": self.config.hnsw_ef,
            "hnsw": {"m": hnsw.m, "ef_construct": hnsw.ef_construct} if hnsw else None,
            "quantization": str(info.config.quantization_config or params.quantization_config
                                or "none"),
        }
        version = ("qdrant-client " + importlib.metadata.version("qdrant-client")) if self.local \
            else self._server_version()
        return Description("qdrant", version, int(params.size), _METRICS[params.distance.value],
                           self.count(), self._id_type(), details,
                           {"status": str(getattr(info.status, "value", info.status))})

    def _id_type(self) -> Literal["int", "str"]:
        with self._errors():
            points, _ = self._qc().scroll(self.config.collection, limit=1, with_payload=False,
                                          with_vectors=False)
        return "int" if points and isinstance(points[0].id, int) else "str"

    def _server_version(self) -> str:
        with self._errors():
            return str(self._qc().info().version)


def _root(scores: list[list[float]]) -> list[list[float]]:
    return [[float(np.sqrt(max(s, 0.0))) for s in row] for row in scores]


def _point_id(value: str) -> int | str | None:
    """Qdrant keys are unsigned integers or UUID strings; anything else cannot be stored."""
    if value.isdigit():
        return int(value)
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None
