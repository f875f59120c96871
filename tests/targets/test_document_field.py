"""Documents read from a metadata field the store keeps beside each chunk (``documents:
{field: ...}`` on a recall probe): a pgvector column on a real PostgreSQL, a Qdrant payload
key (local mode), a Chroma metadata key (PersistentClient) and a LanceDB column, and a clear
refusal from a store without metadata (FAISS)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector

from ragmon.monitor.errors import TargetError
from ragmon.monitor.targets import VectorTarget
from ragmon.probes.recall.config import DocumentsConfig
from ragmon.probes.recall.documents import DocumentMap, collapse

Build = Callable[..., VectorTarget]


@pytest.fixture
def pages(postgres_url: str) -> Iterator[tuple[str, np.ndarray]]:
    """Table ``chunks`` (text id, vector(16), page): 200 chunks of 20 pages, one without."""
    vectors = np.random.default_rng(5).normal(size=(200, 16)).astype(np.float32)
    url = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(conn)
        conn.execute("CREATE TABLE chunks (key text PRIMARY KEY, vec vector(16), page text)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO chunks VALUES (%s, %s, %s)",
                            [(f"c{i}", v, None if i == 0 else f"page-{i % 20}")
                             for i, v in enumerate(vectors)])
    yield url, vectors


def pg(build: Build, url: str) -> VectorTarget:
    return build("pg", {"kind": "pgvector", "url": url, "table": "chunks", "id_column": "key",
                        "vector_column": "vec", "metric": "l2"})


def test_pgvector_reads_the_document_column(build: Build, pages: Any) -> None:
    url, vectors = pages
    target = pg(build, url)
    try:
        got = target.document_ids(["c1", "c21", "c0", "nope"], "page")
        assert got == {"c1": "page-1", "c21": "page-1"}  # NULL and unknown ids left out
        with pytest.raises(TargetError, match="table 'chunks' has no column 'page_id' to read "
                           "documents from; columns: key, page, vec"):
            target.document_ids(["c1"], "page_id")
        query = np.random.default_rng(6).normal(size=(1, 16)).astype(np.float32)
        result = target.exact_search(query, 30)
        docs = DocumentMap(DocumentsConfig(field="page"))
        docs.resolve(target, result.ids[0])
        ranked = collapse(result.ids[0], result.scores[0], docs.of)
    finally:
        target.close()
    # the oracle: numpy distances, each page at its nearest chunk, c0 its own document
    dist = ((vectors - query[0]) ** 2).sum(1)
    expected: list[str] = []
    for i in np.argsort(dist)[:30]:
        doc = "c0" if i == 0 else f"page-{i % 20}"
        if doc not in expected:
            expected.append(doc)
    assert ranked == expected


def test_judged_chunks_count_for_their_page_whether_retrieved_or_not(build: Build,
                                                                     pages: Any) -> None:
    """A golden set judging two chunks of page-1 and the page page-2 by name: resolved up
    front, the judgments are two pages, so retrieving c1 alone scores page-1 as found
    (before, the unretrieved c21 stayed a document of its own that nothing could return)."""
    url, _ = pages
    target = pg(build, url)
    try:
        docs = DocumentMap(DocumentsConfig(field="page"))
        docs.resolve(target, {"c1", "c21", "page-2"})
        assert docs.lift({"c1": 1.0, "c21": 2.0, "page-2": 1.0}) == {"page-1": 2.0,
                                                                    "page-2": 1.0}
        assert docs.judged_chunks({"c1": 1.0, "c21": 2.0, "page-2": 1.0}) == {
            "c1": 1.0, "c21": 2.0}
    finally:
        target.close()


def test_a_store_without_metadata_says_which_mapping_to_use(build: Build,
                                                            tmp_path: Path) -> None:
    import faiss

    index = faiss.IndexFlatL2(4)
    index.add(np.eye(4, dtype=np.float32))
    faiss.write_index(index, str(tmp_path / "x.faiss"))
    target = build("docs", {"kind": "faiss", "path": str(tmp_path / "x.faiss")})
    with pytest.raises(TargetError) as err:
        target.document_ids(["0"], "page")
    assert str(err.value).endswith(
        "this target (FaissTarget) keeps no metadata, so documents cannot be read from field "
        "'page'; map chunk ids to documents with documents.pattern or documents.separator "
        "instead")
    assert "docs" in str(err.value)


def test_an_http_endpoint_says_which_mapping_to_use(build: Build, http_config: Any) -> None:
    target = build("app", http_config("http://127.0.0.1:9/search"))
    with pytest.raises(TargetError) as err:
        target.document_ids(["0"], "page")  # refused before any request is sent
    assert str(err.value) == (
        "target 'app': this target (HttpTarget) keeps no metadata, so documents cannot be read "
        "from field 'page'; map chunk ids to documents with documents.pattern or "
        "documents.separator instead")


# -- Qdrant, Chroma, LanceDB: MiniLM vectors of the stdlib corpus, pages are their topics ------

CHUNKS = 300


def _store_qdrant(path: Path, vectors: np.ndarray, meta: list[dict[str, Any]]) -> dict[str, Any]:
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(path))
    client.create_collection("chunks", vectors_config=models.VectorParams(
        size=vectors.shape[1], distance=models.Distance.COSINE))
    client.upload_collection("chunks", vectors=vectors, ids=list(range(len(vectors))),
                             payload=meta)
    client.close()  # local mode locks the directory
    return {"kind": "qdrant", "path": str(path), "collection": "chunks"}


def _store_chroma(path: Path, vectors: np.ndarray, meta: list[dict[str, Any]]) -> dict[str, Any]:
    import chromadb

    client = chromadb.PersistentClient(path=str(path),
                                       settings=chromadb.Settings(anonymized_telemetry=False))
    col = client.create_collection("chunks", configuration={"hnsw": {"space": "cosine"}})
    col.add(ids=[str(i) for i in range(len(vectors))], embeddings=vectors, metadatas=meta)
    return {"kind": "chroma", "path": str(path), "collection": "chunks"}


def _store_lancedb(path: Path, vectors: np.ndarray, meta: list[dict[str, Any]]) -> dict[str, Any]:
    import lancedb
    import pyarrow as pa

    table = pa.table({
        "id": pa.array(np.arange(len(vectors)), pa.int64()),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), vectors.shape[1]),
        "page": [m.get("page") for m in meta],
        "other": [m.get("other") for m in meta],
    })
    lancedb.connect(str(path)).create_table("chunks", table)
    return {"kind": "lancedb", "uri": str(path), "table": "chunks", "metric": "cosine"}


STORES = {"qdrant": _store_qdrant, "chroma": _store_chroma, "lancedb": _store_lancedb}
UNKNOWN_FIELD = {
    "qdrant": "no point of collection 'chunks' read has the payload key 'page_id' to read "
              "documents from; keys found: other, page",
    "chroma": "no record of collection 'chunks' read has the metadata key 'page_id' to read "
              "documents from; keys found: other, page",
    "lancedb": "table 'chunks' has no column 'page_id' to read documents from; columns: id, "
               "vector, page, other",
}


@pytest.mark.parametrize("engine", list(STORES))
def test_metadata_stores_read_the_document_field(engine: str, build: Build, data: Any,
                                                 tmp_path: Path) -> None:
    """Chunk i's page is its corpus topic; chunk 0 has no page (only ``other``)."""
    vectors = np.ascontiguousarray(data.vectors[:CHUNKS])
    meta = [{"other": "x"} if i == 0 else {"page": data.topics[i], "other": "x"}
            for i in range(CHUNKS)]
    target = build(engine, STORES[engine](tmp_path / engine, vectors, meta))
    try:
        got = target.document_ids(["1", "2", "0", "999999"], "page")
        # chunk 0 (no page) and an unknown id are left out
        assert got == {"1": data.topics[1], "2": data.topics[2]}
        with pytest.raises(TargetError) as err:
            target.document_ids(["1", "2"], "page_id")
        assert str(err.value).endswith(UNKNOWN_FIELD[engine])
        query = data.queries[:1]
        result = target.exact_search(query, 40)
        docs = DocumentMap(DocumentsConfig(field="page"))
        docs.resolve(target, result.ids[0])
        ranked = collapse(result.ids[0], result.scores[0], docs.of)
    finally:
        target.close()
    # the oracle: numpy cosines, each page at its nearest chunk, chunk 0 its own document
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cos = unit @ (query[0] / np.linalg.norm(query[0]))
    expected: list[str] = []
    for i in np.argsort(-cos, kind="stable")[:40]:
        doc = "0" if i == 0 else data.topics[i]
        if doc not in expected:
            expected.append(doc)
    assert ranked == expected
    assert 1 < len(expected) < 40  # pages hold several of the top chunks: a real collapse
