"""pgvector specifics on a real PostgreSQL: exact by sequential scan, knobs, dead tuples,
metrics, a server that is down, and a table that is not what the config says."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector

from ragmon.monitor.errors import TargetError, TargetUnavailable
from ragmon.monitor.targets import VectorTarget

Build = Callable[..., VectorTarget]


@pytest.fixture
def small(postgres_url: str) -> Iterator[tuple[str, np.ndarray]]:
    """A fresh database with table ``items`` (text id, vector(16)): 300 random vectors."""
    vectors = np.random.default_rng(3).normal(size=(300, 16)).astype(np.float32)
    url = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(conn)
        conn.execute("CREATE TABLE items (key text PRIMARY KEY, vec vector(16), lang text)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO items VALUES (%s, %s, %s)",
                            [(f"k{i}", v, "en" if i % 2 else "de") for i, v in enumerate(vectors)])
    yield url, vectors


def raw(url: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "pgvector", "url": url, "table": "items", "id_column": "key",
            "vector_column": "vec", **extra}


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_exact_search_matches_numpy_for_each_metric(build: Build, small: Any,
                                                    metric: str) -> None:
    url, vectors = small
    queries = np.random.default_rng(4).normal(size=(5, 16)).astype(np.float32)
    target = build("pg", raw(url, metric=metric))
    try:
        result = target.exact_search(queries, 5)
    finally:
        target.close()
    if metric == "l2":
        order = np.argsort(((queries[:, None] - vectors[None]) ** 2).sum(-1), axis=1)
    elif metric == "ip":
        order = np.argsort(-(queries @ vectors.T), axis=1)
    else:
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        order = np.argsort(-(queries @ unit.T), axis=1)
    assert result.ids == [[f"k{i}" for i in row[:5]] for row in order]
    assert result.exact


def test_metric_comes_from_the_index_or_must_be_set(build: Build, small: Any) -> None:
    url, _ = small
    target = build("pg", raw(url))
    with pytest.raises(TargetError, match="table 'items' has no vector index to read the metric "
                       "from; set metric"):
        target.count() and target.describe()
    target.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE INDEX ON items USING ivfflat (vec vector_l2_ops) WITH (lists = 4)")
    target = build("pg", raw(url, probes=2))
    try:
        desc = target.describe()
        assert desc.metric == "l2" and desc.params["probes"] == 2 and desc.id_type == "str"
        assert "ivfflat" in desc.params["indexes"][0]
    finally:
        target.close()


def test_describe_reports_dead_tuples(build: Build, small: Any) -> None:
    url, _ = small
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE items SET (autovacuum_enabled = false)")
        conn.execute("DELETE FROM items WHERE lang = 'de'")
        conn.execute("SELECT pg_stat_force_next_flush()")
    target = build("pg", raw(url, metric="l2"))
    try:
        desc = target.describe()
        assert desc.count == 150 and desc.stats["n_dead_tup"] == 150
        assert target.fetch(["k0", "k1"]).missing == ["k0"]
    finally:
        target.close()


def test_table_and_columns_that_do_not_exist_are_named(build: Build, small: Any) -> None:
    url, _ = small
    for extra, message in (({"table": "nope"}, "table 'nope' does not exist at postgresql"),
                           ({"vector_column": "emb"}, "table 'items' has no column 'emb'; "
                            "columns: key, lang, vec")):
        target = build("pg", {**raw(url, metric="l2"), **extra})
        with pytest.raises(TargetError, match=message):
            target.count() and target.search(np.ones((1, 16), np.float32), 1)
        target.close()


def test_a_server_that_is_down_names_target_and_endpoint_without_password(build: Build) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = build("docs", {"kind": "pgvector", "url": f"postgresql://ragmon:hunter2@127.0.0.1:"
                            f"{port}/vectors", "table": "items", "timeout": "2s"})
    with pytest.raises(TargetUnavailable) as info:
        target.search(np.ones((1, 16), np.float32), 3)
    message = str(info.value)
    assert message.startswith(f"target 'docs': PostgreSQL at postgresql://ragmon:***@127.0.0.1:"
                              f"{port}/vectors is unreachable: ")
    assert "hunter2" not in message


def test_empty_table_answers_nothing(build: Build, small: Any) -> None:
    url, _ = small
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE items")
    target = build("pg", raw(url, metric="cosine"))
    try:
        query = np.ones((2, 16), np.float32)
        assert target.count() == 0
        assert target.search(query, 5).ids == [[], []]
        assert target.exact_search(query, 5).ids == [[], []]
        assert target.sample(5, 0).ids == []
    finally:
        target.close()


def test_a_query_past_the_timeout_is_cancelled_and_named(build: Build, small: Any) -> None:
    """A table held locked by another session: the statement_timeout cancels the wait."""
    url, _ = small
    target = build("pg", raw(url, metric="l2", timeout="300ms"))
    target.describe()  # metadata read before the lock
    with psycopg.connect(url) as locker:
        locker.execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(TargetUnavailable, match=r"target 'pg': PostgreSQL at postgresql://"
                           r".* did not answer within 0.3s"):
            target.search(np.ones((1, 16), np.float32), 3)
        locker.rollback()
    assert len(target.search(np.ones((1, 16), np.float32), 3).ids[0]) == 3  # reconnects
    target.close()


def test_probes_in_parallel_threads_share_one_target(build: Build, small: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    url, vectors = small
    target = build("pg", raw(url, metric="l2"))
    try:
        want = target.exact_search(vectors[:1], 3).ids
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: target.exact_search(vectors[:1], 3).ids, range(16)))
    finally:
        target.close()
    assert results == [want] * 16 and want[0][0] == "k0"


@pytest.mark.parametrize(("index", "knob", "message"), [
    ("ivfflat (vec vector_l2_ops) WITH (lists = 4)", {"ef_search": 10},
     "ef_search applies to an hnsw index, but the vector indexes on items.vec are: ivfflat; "
     "remove ef_search from the config"),
    ("hnsw (vec vector_l2_ops)", {"probes": 2},
     "probes applies to an ivfflat index, but the vector indexes on items.vec are: hnsw; "
     "remove probes from the config"),
    (None, {"ef_search": 10, "metric": "l2"},
     "ef_search applies to an hnsw index, but the vector indexes on items.vec are: none; "
     "remove ef_search from the config"),
])
def test_knobs_that_do_not_apply_to_the_index_are_refused(
    build: Build, small: Any, index: str | None, knob: dict[str, Any], message: str
) -> None:
    url, _ = small
    if index:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE INDEX ON items USING {index}")
    target = build("pg", raw(url, **knob))
    try:
        with pytest.raises(TargetError, match=f"^target 'pg': {message}$"):
            target.describe()
        with pytest.raises(TargetError, match="remove"):
            target.search(np.ones((1, 16), np.float32), 3)
    finally:
        target.close()


def test_knobs_of_each_index_apply_when_both_exist(build: Build, small: Any) -> None:
    url, _ = small
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE INDEX ON items USING hnsw (vec vector_l2_ops)")
        conn.execute("CREATE INDEX ON items USING ivfflat (vec vector_l2_ops) WITH (lists = 4)")
    target = build("pg", raw(url, ef_search=50, probes=2))
    try:
        params = target.describe().params
        assert (params["ef_search"], params["probes"]) == (50, 2)
    finally:
        target.close()
    target = build("pg", raw(url))  # unset: the server's defaults, as docs/adapters.md says
    try:
        params = target.describe().params
        assert (params["ef_search"], params["probes"]) == (40, 1)
    finally:
        target.close()


def test_a_rebuilt_index_gets_a_new_fingerprint_a_growing_one_does_not(
    build: Build, small: Any
) -> None:
    """The same DDL rebuilt (REINDEX, DROP and CREATE, VACUUM FULL, TRUNCATE) is another
    graph: a new fingerprint, seen by a running target; inserts, deletes, VACUUM and
    ANALYZE keep it."""
    url, vectors = small
    ddl = "CREATE INDEX items_vec ON items USING hnsw (vec vector_l2_ops)"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(ddl)
    target = build("pg", raw(url))
    try:
        seen = [target.describe().fingerprint()]
        with psycopg.connect(url, autocommit=True) as conn:
            register_vector(conn)
            conn.execute("INSERT INTO items VALUES ('new', %s, 'en')", (vectors[0],))
            conn.execute("DELETE FROM items WHERE key = 'k1'")
            conn.execute("VACUUM ANALYZE items")
        assert target.describe().fingerprint() == seen[0]
        for rebuild in ("REINDEX INDEX items_vec", f"DROP INDEX items_vec; {ddl}",
                        "VACUUM FULL items", "TRUNCATE items"):
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(rebuild)
            seen.append(target.describe().fingerprint())
            fresh = build("pg2", raw(url))
            assert fresh.describe().fingerprint() == seen[-1]
            fresh.close()
        assert len(set(seen)) == 5, seen
    finally:
        target.close()
