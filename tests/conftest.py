"""Fixtures shared by the whole suite: real PostgreSQL (pgserver wheel, or
RAGMON_TEST_POSTGRES_URL), the bundled MiniLM embedder and the stdlib-docstring corpus
with cached embeddings, and a store fixture parametrized over SQLite and PostgreSQL."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragmon.monitor.http import free_port  # noqa: F401 - re-exported for the tests

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAGMON_CACHE_DIR", str(REPO / ".cache"))


def promtool_path() -> str:
    """The real promtool (the set-up extracts it from Debian's prometheus package into
    .tools/bin). Missing promtool is a set-up error, never a skip."""
    found = shutil.which("promtool") or str(REPO / ".tools" / "bin" / "promtool")
    if not os.access(found, os.X_OK):
        raise RuntimeError("promtool not found: run ./scripts/setup (it extracts promtool "
                           "from Debian's prometheus package into .tools/bin)")
    return found


@pytest.fixture(scope="session")
def promtool() -> str:
    return promtool_path()


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A real PostgreSQL with pgvector; one server for the session."""
    url = os.environ.get("RAGMON_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    import pgserver

    # Not under pytest's basetemp: a concurrent pytest run prunes old basetemps, which would
    # delete the data directory of a running server.
    pgdata = Path(tempfile.mkdtemp(prefix="ragmon-test-pg-"))
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)


def create_database(server_url: str) -> tuple[str, Callable[[], None]]:
    """A new, empty database on ``server_url``: its URL, and what drops it."""
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(server_url.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return base.set(database=name).render_as_string(hide_password=False), drop


@pytest.fixture
def new_postgres_database(postgres_server_url: str) -> Iterator[Any]:
    """Makes fresh databases on the session's server (for tests that need several); they
    are dropped afterwards."""
    drops: list[Callable[[], None]] = []

    def make() -> str:
        url, drop = create_database(postgres_server_url)
        drops.append(drop)
        return url

    yield make
    for drop in drops:
        drop()


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty database on the session's PostgreSQL server, dropped afterwards."""
    url, drop = create_database(postgres_server_url)
    yield url
    drop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every store test runs on SQLite and on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ragmon.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(store_url: str):  # type: ignore[no-untyped-def]
    from ragmon.monitor.store import Store

    s = Store(store_url)
    s.migrate()
    yield s
    s.close()


@pytest.fixture(scope="session")
def minilm():  # type: ignore[no-untyped-def]
    """The bundled all-MiniLM-L6-v2 embedder (384-d, normalised), loaded once."""
    from ragmon.monitor.embedders.sentence_transformers import (
        SentenceTransformerEmbedder,
        SentenceTransformersConfig,
    )

    cfg = SentenceTransformersConfig(kind="sentence-transformers", model="all-MiniLM-L6-v2")
    return SentenceTransformerEmbedder("minilm", cfg)


@pytest.fixture(scope="session")
def corpus():  # type: ignore[no-untyped-def]
    """Real text: chunked stdlib docstrings (id, topic=module, text)."""
    from ragmon.monitor.demo.corpus import stdlib_corpus

    return stdlib_corpus()


@pytest.fixture(scope="session")
def corpus_vectors(minilm, corpus) -> np.ndarray:  # type: ignore[no-untyped-def]
    """MiniLM embeddings of ``corpus`` (row i embeds corpus[i]), cached on disk."""
    from ragmon.monitor.demo.embeddings import cached_encode

    return cached_encode(minilm, [c.text for c in corpus])
