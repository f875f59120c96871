"""Documents read from a metadata field the store keeps beside each chunk (``documents:
{field: ...}`` on a recall probe): a pgvector column on a real PostgreSQL, and a clear
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
