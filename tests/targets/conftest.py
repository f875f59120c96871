"""Real vector stores filled with real embeddings (MiniLM over stdlib docstrings), one
session-scoped build per engine, plus a real HTTP search service on 127.0.0.1.

Every 20th chunk is held out of the indexes and used as a query: real questions-like text
that is near, but not in, the index.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragmon.monitor.targets import TARGET_KINDS, VectorTarget

K = 10
N_QUERIES = 40


@dataclass
class Data:
    """The indexed vectors (row i has id ids[i]) and held-out query vectors."""

    ids: list[str]
    vectors: np.ndarray
    topics: list[str]
    queries: np.ndarray


def make_target(name: str, raw: dict[str, Any], base: Path | None = None) -> VectorTarget:
    """Validate ``raw`` like a config file entry would be, then build the adapter."""
    spec = TARGET_KINDS[raw["kind"]]
    config = spec.params.model_validate(raw, context={"base_dir": base or Path.cwd()})
    return spec.factory(name, config)


@pytest.fixture(scope="session")
def real_vectors(request: pytest.FixtureRequest, corpus) -> np.ndarray:  # type: ignore[no-untyped-def]
    """MiniLM embeddings of the corpus. The adapters only need real embeddings, not these
    exact ones, so they are kept by corpus digest alone: after the first run, these tests
    do not load the model just to check its fingerprint."""
    from ragmon.monitor.demo.corpus import corpus_digest
    from ragmon.monitor.demo.embeddings import cache_dir

    path = cache_dir() / "targets" / f"{corpus_digest(corpus)[:32]}.npy"
    if path.exists():
        return np.load(path)
    vectors = np.asarray(request.getfixturevalue("corpus_vectors"), dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, vectors)
    tmp.replace(path)
    return vectors


@pytest.fixture(scope="session")
def data(corpus, real_vectors) -> Data:  # type: ignore[no-untyped-def]
    vectors = np.asarray(real_vectors, dtype=np.float32)
    held = np.arange(len(vectors)) % 20 == 0
    kept = np.flatnonzero(~held)
    return Data(ids=[str(i) for i in range(len(kept))], vectors=vectors[kept],
                topics=[corpus[i].topic for i in kept],
                queries=vectors[np.flatnonzero(held)][:N_QUERIES])


@pytest.fixture(scope="session")
def build() -> Callable[..., VectorTarget]:
    """``build(name, raw_config_dict)`` -> a target, validated as a config entry would be."""
    return make_target


# -- FAISS --------------------------------------------------------------------------------

def write_faiss(path: Path, vectors: np.ndarray, factory: str, ids: np.ndarray | None = None,
                metric: int | None = None) -> Path:
    """Build a FAISS index with ``factory`` and write it atomically to ``path``."""
    import faiss

    index = faiss.index_factory(vectors.shape[1], factory,
                                faiss.METRIC_INNER_PRODUCT if metric is None else metric)
    if not index.is_trained:
        index.train(vectors)
    if ids is not None:
        index.add_with_ids(vectors, ids)
    else:
        index.add(vectors)
    tmp = path.with_suffix(".tmp")
    faiss.write_index(index, str(tmp))
    tmp.replace(path)
    return path


FAISS_FACTORIES = {
    "flat": "IDMap2,Flat",
    "hnsw": "IDMap2,HNSW32",
    "ivf": "IDMap2,IVF32,Flat",
    "pq": "IDMap2,IVF16,PQ48x4np",
}


@pytest.fixture(scope="session")
def faiss_files(data: Data, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("faiss")
    ids = np.arange(len(data.ids), dtype=np.int64)
    return {name: write_faiss(folder / f"{name}.faiss", data.vectors, factory, ids)
            for name, factory in FAISS_FACTORIES.items()}


# -- pgvector -----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def pg_db(postgres_server_url: str) -> Iterator[str]:
    """A database for this module's tables on the session's PostgreSQL (with pgvector)."""
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(postgres_server_url).set(drivername="postgresql")  # libpq's form
    name = f"targets_{uuid.uuid4().hex[:8]}"
    admin = base.render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = base.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_table(url: str, table: str, data: Data, index: str | None) -> None:
    """Create and fill ``table`` (bigint id, vector(d), topic) and build ``index`` on it."""
    import psycopg
    from pgvector.psycopg import register_vector

    dim = data.vectors.shape[1]
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        conn.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, embedding vector({dim}), "
                     "topic text)")
        with conn.cursor().copy(f"COPY {table} (id, embedding, topic) FROM STDIN "
                                "WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "vector", "text"])
            for i, (vector, topic) in enumerate(zip(data.vectors, data.topics, strict=True)):
                copy.write_row((i, vector, topic))
        if index:
            conn.execute(f"CREATE INDEX ON {table} USING {index}")
        conn.execute(f"ANALYZE {table}")


@pytest.fixture(scope="session")
def pg_tables(pg_db: str, data: Data) -> str:
    pg_table(pg_db, "docs", data, "hnsw (embedding vector_cosine_ops)")
    # a deliberately weak graph: few links, small build beam
    pg_table(pg_db, "docs_weak", data,
             "hnsw (embedding vector_cosine_ops) WITH (m = 4, ef_construction = 16)")
    return pg_db


# -- Chroma, LanceDB, Qdrant --------------------------------------------------------------

@pytest.fixture(scope="session")
def chroma_dir(data: Data, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import chromadb

    path = tmp_path_factory.mktemp("chroma")
    client = chromadb.PersistentClient(path=str(path),
                                       settings=chromadb.Settings(anonymized_telemetry=False))
    for name, hnsw in (("docs", {"space": "cosine"}),
                       ("docs_weak", {"space": "cosine", "ef_search": 10, "max_neighbors": 4,
                                      "ef_construction": 10})):
        col = client.create_collection(name, configuration={"hnsw": hnsw})
        for start in range(0, len(data.ids), 1000):
            stop = start + 1000
            col.add(ids=data.ids[start:stop], embeddings=data.vectors[start:stop],
                    metadatas=[{"topic": t} for t in data.topics[start:stop]])
    client.create_collection("empty", configuration={"hnsw": {"space": "cosine"}})
    return path


@pytest.fixture(scope="session")
def lance_dir(data: Data, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import lancedb
    import pyarrow as pa

    path = tmp_path_factory.mktemp("lance")
    db = lancedb.connect(str(path))
    dim = data.vectors.shape[1]
    table = pa.table({
        "id": pa.array(np.arange(len(data.ids)), pa.int64()),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(data.vectors.ravel()), dim),
        "topic": data.topics,
    })
    from lancedb.index import IvfFlat, IvfPq

    db.create_table("docs", table).create_index(
        "vector", config=IvfFlat(distance_type="cosine", num_partitions=32))
    db.create_table("docs_weak", table).create_index(
        "vector", config=IvfPq(distance_type="cosine", num_partitions=32, num_sub_vectors=8))
    db.create_table("empty", schema=table.schema)
    return path


@pytest.fixture(scope="session")
def qdrant_dir(data: Data, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Qdrant local mode commits (fsyncs) SQLite once per point: on disk a few thousand
    points take half a minute, so the directory lives on tmpfs when there is one."""
    import shutil
    import tempfile

    from qdrant_client import QdrantClient, models

    shm = Path("/dev/shm")
    path = (Path(tempfile.mkdtemp(prefix="ragmon-qdrant-", dir=shm)) if shm.is_dir()
            else tmp_path_factory.mktemp("qdrant"))
    client = QdrantClient(path=str(path))
    dim = data.vectors.shape[1]
    for name in ("docs", "empty"):
        client.create_collection(name, vectors_config=models.VectorParams(
            size=dim, distance=models.Distance.COSINE))
    client.upload_collection("docs", vectors=data.vectors, ids=list(range(len(data.ids))),
                             payload=[{"topic": t} for t in data.topics])
    client.close()  # local mode locks the directory: one client at a time
    yield path
    shutil.rmtree(path, ignore_errors=True)


# -- HTTP ---------------------------------------------------------------------------------

class SearchService:
    """A RAG app's search service: HNSW for /search, flat for /exact, plus faulty routes.

    Requests: ``{"query": {"embedding": [...]}, "top_k": k}``; answers:
    ``{"data": {"matches": [{"doc": {"id": ...}, "similarity": ...}]}}``.
    """

    def __init__(self, vectors: np.ndarray, token: str):
        import faiss

        self.token = token
        self.flat = faiss.IndexFlatIP(vectors.shape[1])
        self.flat.add(vectors)
        self.hnsw = faiss.IndexHNSWFlat(vectors.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        self.hnsw.add(vectors)
        self.hnsw.hnsw.efSearch = 64
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        if path == "/slow":
            time.sleep(1.5)
        if path == "/down":
            return 503, {"error": "index rebuilding"}
        if path == "/bad":
            return 200, {"data": {"matches": [{"doc": {"id": 1}, "similarity": "high"}]}}
        if path == "/missing":
            return 200, {"data": {"results": []}}
        if path == "/html":  # a proxy's error page where JSON was expected
            return 200, b"<html><body>502 Bad Gateway</body></html>"
        query = np.asarray([body["query"]["embedding"]], dtype=np.float32)
        index = self.flat if path == "/exact" else self.hnsw
        scores, ids = index.search(query, int(body["top_k"]))
        hits = [{"doc": {"id": int(i)}, "similarity": float(s)}
                for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
        return 200, {"data": {"matches": hits}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.headers.get("Authorization") != f"Bearer {service.token}":
                    status, payload = 401, {"error": "unauthorized"}
                else:
                    status, payload = service.answer(self.path, body)
                raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (the timeout test): nobody to answer

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


HTTP_TOKEN = "s3cret-token-value"


@pytest.fixture(scope="session")
def search_service(data: Data) -> Iterator[SearchService]:
    service = SearchService(data.vectors, HTTP_TOKEN)
    yield service
    service.close()


@pytest.fixture(scope="session")
def http_config() -> Callable[..., dict[str, Any]]:
    """``http_config(url, **overrides)``: the raw config of an HTTP target for SearchService."""
    return http_raw


def http_raw(url: str, **extra: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "kind": "http", "url": url, "headers": {"Authorization": f"Bearer {HTTP_TOKEN}"},
        "request": {"query": "query.embedding", "k": "top_k"},
        "response": {"hits": "data.matches", "id": "doc.id", "score": "similarity"},
        "dimension": 384, "metric": "ip",
    }
    raw.update(extra)
    return raw


# -- one fixture over every adapter -------------------------------------------------------

def _builders(request: pytest.FixtureRequest) -> dict[str, Callable[[], VectorTarget]]:
    def fx(name: str) -> Any:
        return request.getfixturevalue(name)

    def faiss_target(variant: str) -> Callable[[], VectorTarget]:
        extra = {"nprobe": 8} if variant in ("ivf", "pq") else {}
        return lambda: make_target(f"faiss-{variant}", {
            "kind": "faiss", "path": str(fx("faiss_files")[variant]), "metric": "cosine",
            **extra})

    return {
        **{f"faiss-{v}": faiss_target(v) for v in FAISS_FACTORIES},
        "pgvector": lambda: make_target("pg", {
            "kind": "pgvector", "url": fx("pg_tables"), "table": "docs",
            "filter_columns": ["topic"], "ef_search": 100}),
        "chroma": lambda: make_target("chroma", {
            "kind": "chroma", "path": str(fx("chroma_dir")), "collection": "docs",
            "filter_columns": ["topic"]}),
        "lancedb": lambda: make_target("lance", {
            "kind": "lancedb", "uri": str(fx("lance_dir")), "table": "docs",
            "filter_columns": ["topic"], "nprobes": 16, "refine_factor": 4}),
        "qdrant": lambda: make_target("qdrant", {
            "kind": "qdrant", "path": str(fx("qdrant_dir")), "collection": "docs",
            "filter_columns": ["topic"]}),
        "http": lambda: make_target("app", http_raw(fx("search_service").url + "/search",
                                                    exact_url=fx("search_service").url
                                                    + "/exact")),
    }


ADAPTERS = [*(f"faiss-{v}" for v in FAISS_FACTORIES), "pgvector", "chroma", "lancedb",
            "qdrant", "http"]


@pytest.fixture(params=ADAPTERS)
def target(request: pytest.FixtureRequest) -> Iterator[VectorTarget]:
    built = _builders(request)[request.param]()
    yield built
    built.close()
