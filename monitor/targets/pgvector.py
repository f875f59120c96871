"""pgvector: a PostgreSQL table with an id column, a ``vector`` column and optional filter
columns.

Live search runs ``ORDER BY vector <op> query LIMIT k`` with ``hnsw.ef_search`` /
``ivfflat.probes`` set by ``SET LOCAL`` in its own transaction. Exact search has two
modes: ``engine``, the documented pgvector recipe (``SET LOCAL enable_indexscan = off``, so
the planner scans the table, once per query), and ``stream``, one binary COPY of the table
(the filter in its WHERE) searched client-side for all queries at once; ``exact_mode:
auto`` picks the cheaper by estimated cost. The metric picks the operator (cosine ``<=>``,
ip ``<#>``, l2 ``<->``); scores are what the operator returns (``<#>`` is the negated inner
product), in both modes.
When ``metric`` is not configured it is read from the vector index's operator class.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from ragmon.monitor.config import Secret, TargetConfig
from ragmon.monitor.errors import TargetError
from ragmon.monitor.targets import _pgstream
from ragmon.monitor.targets._exact import DEFAULT_BLOCK, Budget, ModeChoice, choose_mode
from ragmon.monitor.targets._helpers import (
    ByteSize,
    check_filter,
    check_k,
    engine_errors,
    int_ids,
    vectors_in_order,
)
from ragmon.monitor.targets._pgcatalog import read_table
from ragmon.monitor.targets._pgstream import quote as _quote
from ragmon.monitor.targets.abc import Description, Metric, SearchResult, Vectors, VectorTarget

_OPERATORS: dict[str, str] = {"cosine": "<=>", "ip": "<#>", "l2": "<->"}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?")


class PgvectorConfig(TargetConfig):
    """A pgvector table (see docs/adapters.md)."""

    kind: Literal["pgvector"]
    url: Secret = Field(description="postgresql://user:password@host:port/database (a secret: "
                        "`{env: VAR}` or `{file: PATH}`).")
    table: str = Field(description="Table (or schema.table) holding the vectors.")
    id_column: str = Field(default="id", description="Column with the document id.")
    vector_column: str = Field(default="embedding", description="Column of type vector(d).")
    filter_columns: list[str] = Field(default_factory=list, description="Columns a probe may "
                                      "filter on (equality).")
    metric: Metric | None = Field(default=None, description="Defaults to the vector index's "
                                  "operator class (vector_cosine_ops, vector_ip_ops, "
                                  "vector_l2_ops).")
    ef_search: int | None = Field(default=None, ge=1, le=1000, description="`SET LOCAL "
                                  "hnsw.ef_search` for live search; server default when unset.")
    probes: int | None = Field(default=None, ge=1, description="`SET LOCAL ivfflat.probes` for "
                               "live search; server default when unset.")
    exact_mode: ModeChoice = Field(default="auto", description="Ground truth by `engine` (a "
                                   "sequential scan per query), `stream` (one COPY of the "
                                   "table for all queries) or `auto`, the cheaper by "
                                   "estimated cost.")
    exact_memory: ByteSize = Field(default=DEFAULT_BLOCK, description="Size of one block of "
                                   "vectors in the streamed exact pass.")

    @field_validator("table", "id_column", "vector_column")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENT.fullmatch(value):
            raise ValueError("not a plain SQL identifier (letters, digits, _; schema.table "
                             "allowed)")
        return value

    @field_validator("filter_columns")
    @classmethod
    def _identifiers(cls, values: list[str]) -> list[str]:
        return [cls._identifier(v) for v in values]


class PgvectorTarget(VectorTarget):
    """Search a pgvector table over one psycopg connection, reconnecting after failures."""

    config: PgvectorConfig

    def __init__(self, name: str, config: PgvectorConfig):
        super().__init__(name, config)
        self._conn: Any = None
        # one connection, shared by probes running in parallel threads: one transaction at a time
        self._lock = threading.RLock()
        self._meta: dict[str, Any] | None = None
        from sqlalchemy.engine import make_url

        raw = config.url.get_secret_value()
        try:
            parsed = make_url(raw).set(drivername="postgresql")  # "+psycopg" is SQLAlchemy's
        except Exception as exc:
            raise TargetError(name, "url is not a PostgreSQL URL "
                              "(postgresql://user:password@host:port/database)") from exc
        # libpq does not know SQLAlchemy's driver suffix; the store's URL form works here too
        self._dsn = parsed.render_as_string(hide_password=False)
        self.endpoint = parsed.render_as_string(hide_password=True)
        self._secrets = [raw, self._dsn] + ([str(parsed.password)] if parsed.password else [])

    # -- connection ------------------------------------------------------------------------

    @contextmanager
    def _session(self) -> Iterator[Any]:
        """A cursor inside one transaction; engine errors become TargetErrors."""
        import psycopg

        with engine_errors(self.name, f"PostgreSQL at {self.endpoint}",
                           unavailable=(psycopg.OperationalError,),
                           timeouts=(psycopg.errors.QueryCanceled,),
                           timeout=self.config.timeout, secrets=self._secrets):
            with self._lock:
                try:
                    conn = self._connect()
                    with conn.transaction(), conn.cursor() as cur:
                        cur.execute("SET LOCAL statement_timeout = "
                                    f"{int(self.config.timeout * 1000)}")
                        yield cur
                except psycopg.OperationalError:
                    self.close()
                    raise

    def _connect(self) -> Any:
        import psycopg
        from pgvector.psycopg import register_vector

        if self._conn is None or self._conn.closed:
            # prepare_threshold=None: no server-side prepared statements. A cached plan is
            # not re-made when enable_indexscan changes, so after a few live searches the
            # "exact" search would silently reuse their index-scan plan.
            conn = psycopg.connect(self._dsn, autocommit=True, prepare_threshold=None,
                                   connect_timeout=max(1, int(self.config.timeout)))
            try:
                register_vector(conn)
            except psycopg.ProgrammingError as exc:
                conn.close()
                raise TargetError(self.name, f"PostgreSQL at {self.endpoint} has no pgvector "
                                  "extension; run CREATE EXTENSION vector") from exc
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    # -- metadata --------------------------------------------------------------------------

    def _metadata(self) -> dict[str, Any]:
        if self._meta is None:
            self._meta = self._read_metadata()
        return self._meta

    def _read_metadata(self) -> dict[str, Any]:
        with self._session() as cur:
            return read_table(cur, self.name, self.config, self.endpoint)

    # -- searching -------------------------------------------------------------------------

    def search(self, vectors: np.ndarray, k: int, filter: dict[str, Any] | None = None, *,
               texts: Sequence[str] | None = None) -> SearchResult:
        """Live top-k, one query per transaction, with ef_search/probes applied."""
        knobs = []
        if self.config.ef_search is not None:
            knobs.append(f"SET LOCAL hnsw.ef_search = {self.config.ef_search}")
        if self.config.probes is not None:
            knobs.append(f"SET LOCAL ivfflat.probes = {self.config.probes}")
        return self._run(vectors, k, filter, knobs, exact=False)

    def exact_search(self, vectors: np.ndarray, k: int, filter: dict[str, Any] | None = None, *,
                     texts: Sequence[str] | None = None,
                     budget: float | None = None) -> SearchResult:
        """True top-k over every row (of the filter): a sequential scan per query forced with
        ``SET LOCAL enable_indexscan = off``, or one streamed COPY for all queries."""
        k = check_k(self.name, k)
        meta = self._metadata()
        queries = self.check_queries(vectors, meta["dimension"])
        where = check_filter(self.name, filter, self.config.filter_columns)
        conditions, params = self._conditions(where)
        with self._session() as cur:
            total = _pgstream.estimated_rows(cur, _quote(self.config.table), conditions, params)
        mode = choose_mode(self.config.exact_mode, _pgstream.COSTS, queries=len(queries),
                           total=total, dimension=meta["dimension"])
        if mode == "engine":
            clock = Budget(self.name, budget, total=total, queries=len(queries))
            return self._run(vectors, k, filter, ["SET LOCAL enable_indexscan = off"],
                             exact=True, clock=clock)
        with self._session() as cur:
            return _pgstream.stream(self.name, cur, self.config, (conditions, params), queries,
                                    k, meta["metric"], total=total, budget=budget)

    def _run(self, vectors: np.ndarray, k: int, filter: dict[str, Any] | None,
             settings: list[str], exact: bool, clock: Budget | None = None) -> SearchResult:
        k = check_k(self.name, k)
        meta = self._metadata()
        queries = self.check_queries(vectors, meta["dimension"])
        where = check_filter(self.name, filter, self.config.filter_columns)
        sql, params = self._query_sql(meta["metric"], where)
        ids, scores, latencies = [], [], []
        for done, query in enumerate(queries, 1):
            start = time.perf_counter()
            with self._session() as cur:
                for setting in settings:
                    cur.execute(setting)
                cur.execute(sql, (query, *params, query, k))
                rows = cur.fetchall()
            latencies.append(time.perf_counter() - start)
            ids.append([str(r[0]) for r in rows])
            scores.append([float(r[1]) for r in rows])
            if clock is not None:
                clock.check(clock.total, queries=done)
        return SearchResult(ids, scores, latencies, exact=exact,
                            exact_mode="engine" if exact else None,
                            scanned=clock.total if clock is not None else None)

    @staticmethod
    def _conditions(where: dict[str, Any]) -> tuple[str, list[Any]]:
        return " AND ".join(f"{_quote(c)} = %s" for c in where) or "TRUE", list(where.values())

    def _query_sql(self, metric: Metric, where: dict[str, Any]) -> tuple[str, list[Any]]:
        cfg = self.config
        op = _OPERATORS[metric]
        conditions, params = self._conditions(where)
        sql = (f"SELECT {_quote(cfg.id_column)}, {_quote(cfg.vector_column)} {op} %s "
               f"FROM {_quote(cfg.table)} WHERE {conditions} "
               f"ORDER BY {_quote(cfg.vector_column)} {op} %s LIMIT %s")
        return sql, params

    # -- reading ---------------------------------------------------------------------------

    def fetch(self, ids: list[str]) -> Vectors:
        meta = self._metadata()
        keys: list[Any] = list(ids)
        if meta["id_type"] == "int":
            keys, _ = int_ids(self.name, ids)
        cfg = self.config
        rows: list[Any] = []
        if keys:
            with self._session() as cur:
                cur.execute(f"SELECT {_quote(cfg.id_column)}, {_quote(cfg.vector_column)} "
                            f"FROM {_quote(cfg.table)} WHERE {_quote(cfg.id_column)} = ANY(%s)",
                            (keys,))
                rows = cur.fetchall()
        return _vectors(ids, {str(r[0]): r[1] for r in rows}, meta["dimension"])

    def document_ids(self, ids: Sequence[str], field: str) -> dict[str, str]:
        """The column ``field`` of each row of ``ids`` (NULL: left out)."""
        meta = self._metadata()
        if field not in meta["columns"] or '"' in field:
            raise TargetError(self.name, f"table {self.config.table!r} has no column {field!r} "
                              f"to read documents from; columns: {', '.join(meta['columns'])}")
        keys: list[Any] = list(ids)
        if meta["id_type"] == "int":
            keys, _ = int_ids(self.name, list(ids))
        cfg = self.config
        if not keys:
            return {}
        with self._session() as cur:
            cur.execute(f"SELECT {_quote(cfg.id_column)}, {_quote(field)} FROM "
                        f"{_quote(cfg.table)} WHERE {_quote(cfg.id_column)} = ANY(%s) AND "
                        f"{_quote(field)} IS NOT NULL", (keys,))
            return {str(r[0]): str(r[1]) for r in cur.fetchall()}

    def sample(self, n: int, seed: int) -> Vectors:
        """Uniform by a seeded hash order of the ids (one query, deterministic per seed)."""
        cfg = self.config
        meta = self._metadata()
        with self._session() as cur:
            cur.execute(f"SELECT {_quote(cfg.id_column)}, {_quote(cfg.vector_column)} "
                        f"FROM {_quote(cfg.table)} ORDER BY md5({_quote(cfg.id_column)}::text "
                        f"|| %s) LIMIT %s", (str(seed), max(n, 0)))
            rows = cur.fetchall()
        return _vectors([str(r[0]) for r in rows], {str(r[0]): r[1] for r in rows},
                        meta["dimension"])

    def count(self) -> int:
        self._metadata()  # names a missing table or column instead of a raw SQL error
        with self._session() as cur:
            cur.execute(f"SELECT count(*) FROM {_quote(self.config.table)}")
            return int(cur.fetchone()[0])

    def describe(self) -> Description:
        """Also reports ``n_dead_tup`` (deleted rows not yet vacuumed) and the index DDL.

        The catalog is read again on every call, so a rebuilt index (a new file node: REINDEX,
        or DROP and CREATE with the same DDL) gets a new fingerprint; rows added do not."""
        self._meta = None
        meta = self._metadata()
        with self._session() as cur:
            cur.execute("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = %s::regclass",
                        (self.config.table,))
            dead = cur.fetchone()
            cur.execute("SELECT current_setting('hnsw.ef_search', true), "
                        "current_setting('ivfflat.probes', true)")
            defaults = cur.fetchone()
        cfg = self.config
        params = {"table": cfg.table, "indexes": meta["indexes"],
                  "index_filenodes": meta["filenodes"],
                  "ef_search": cfg.ef_search or _int_or_none(defaults[0]),
                  "probes": cfg.probes or _int_or_none(defaults[1])}
        stats = {"n_dead_tup": int(dead[0]) if dead else 0}
        return Description("pgvector", meta["version"], meta["dimension"], meta["metric"],
                           self.count(), meta["id_type"], params, stats)


def _array(value: Any) -> Any:
    """pgvector's psycopg loaders return numpy arrays (text) or ``Vector`` (binary)."""
    return value.to_numpy() if hasattr(value, "to_numpy") else value


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value else None


def _vectors(ids: list[str], found: dict[str, Any], dimension: int) -> Vectors:
    return vectors_in_order(ids, {i: _array(v) for i, v in found.items()}, dimension)
