"""LanceDB: a table in a database directory (or any URI ``lancedb.connect`` accepts).

Live search uses the table's vector index with ``nprobes`` / ``refine_factor`` as
configured; exact search is the same query with ``.bypass_vector_index()`` (a flat scan per
query, ``exact_mode: engine``) or one pass over the table's record batches for all queries
(``stream``); ``auto`` picks the cheaper by estimated cost.
The metric is read from the index (``index_stats().distance_type``) unless configured; it
must match the index, since LanceDB searches by the distance the query names. Scores are
LanceDB's ``_distance`` (``l2``: squared L2, ``cosine``: 1 - cosine, ``dot``: 1 - dot).
The table is re-opened (``checkout_latest``) on every call, so new versions are seen.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from ragmon.monitor.config import TargetConfig
from ragmon.monitor.errors import TargetError, TargetUnavailable
from ragmon.monitor.targets._exact import (
    DEFAULT_BLOCK,
    Budget,
    Costs,
    ModeChoice,
    choose_mode,
    one_minus,
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

_DISTANCE = {"cosine": "cosine", "ip": "dot", "l2": "l2"}
_METRIC: dict[str, Metric] = {"cosine": "cosine", "dot": "ip", "l2": "l2"}
#: A flat query per query, or one read of the record batches (seconds; see ``Costs``).
_COSTS = Costs(per_query=3e-3, engine_row=2e-7, read_row=3e-7)
_COLUMN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


class LanceDBConfig(TargetConfig):
    """A LanceDB table (see docs/adapters.md)."""

    kind: Literal["lancedb"]
    uri: str = Field(description="Database directory (or any URI lancedb.connect accepts).")
    table: str = Field(description="Table name.")
    id_column: str = Field(default="id", description="Column with the document id.")
    vector_column: str = Field(default="vector", description="Fixed-size list column of "
                               "float32.")
    filter_columns: list[str] = Field(default_factory=list, description="Columns a probe may "
                                      "filter on (equality, prefiltered).")
    metric: Metric | None = Field(default=None, description="Defaults to the vector index's "
                                  "distance type; required for a table without an index.")
    nprobes: int | None = Field(default=None, ge=1, description="IVF partitions probed in live "
                                "search; LanceDB's default when unset.")
    refine_factor: int | None = Field(default=None, ge=1, description="Re-rank refine_factor*k "
                                      "PQ candidates on full vectors in live search.")
    exact_mode: ModeChoice = Field(default="auto", description="Ground truth by `engine` (a "
                                   "flat query per query), `stream` (one read of the table "
                                   "for all queries) or `auto`, the cheaper by estimated cost.")
    exact_memory: ByteSize = Field(default=DEFAULT_BLOCK, description="Size of one block of "
                                   "vectors in the streamed exact pass.")

    @field_validator("id_column", "vector_column")
    @classmethod
    def _plain(cls, value: str) -> str:
        if not value or not set(value) <= _COLUMN_CHARS:
            raise ValueError("not a plain column name (letters, digits, _)")
        return value

    @field_validator("filter_columns")
    @classmethod
    def _plains(cls, values: list[str]) -> list[str]:
        return [cls._plain(v) for v in values]


class LanceDBTarget(VectorTarget):
    """Search one LanceDB table in process."""

    config: LanceDBConfig

    def __init__(self, name: str, config: LanceDBConfig):
        super().__init__(name, config)
        self.endpoint = f"LanceDB table {config.table!r} at {config.uri!r}"
        self._table: Any = None

    def _errors(self) -> Any:
        return engine_errors(self.name, self.endpoint, timeout=self.config.timeout)

    def _tbl(self) -> Any:
        import lancedb

        with self._errors():
            if self._table is None:
                if "://" not in self.config.uri:
                    from pathlib import Path

                    if not Path(self.config.uri).is_dir():
                        raise TargetUnavailable(self.name, f"{self.endpoint}: the directory "
                                                "does not exist")
                db = lancedb.connect(self.config.uri)
                names = _table_names(db)
                if self.config.table not in names:
                    raise TargetError(self.name, f"table {self.config.table!r} does not exist "
                                      f"at {self.config.uri!r}; tables: "
                                      f"{', '.join(sorted(names)) or '(none)'}")
                self._table = db.open_table(self.config.table)
            else:
                self._table.checkout_latest()
        return self._table

    def close(self) -> None:
        self._table = None

    # -- metadata --------------------------------------------------------------------------

    def _index(self) -> tuple[Any, Any]:
        """(index config, index statistics) of the vector column's index, or (None, None)."""
        table = self._tbl()
        for index in table.list_indices():
            if list(index.columns) == [self.config.vector_column]:
                return index, table.index_stats(index.name)
        return None, None

    def _metric(self) -> Metric:
        if self.config.metric is not None:
            return self.config.metric
        _, stats = self._index()
        if stats is None or not getattr(stats, "distance_type", None):
            raise TargetError(self.name, f"table {self.config.table!r} has no vector index to "
                              "read the metric from; set metric (cosine, ip or l2)")
        return _METRIC[stats.distance_type]

    def _dimension(self) -> int:
        field = self._tbl().schema.field(self.config.vector_column)
        return int(field.type.list_size)

    def _where(self, filter: dict[str, Any] | None) -> str | None:
        where = check_filter(self.name, filter, self.config.filter_columns)
        return " AND ".join(f"{column} = {_literal(v)}" for column, v in where.items()) or None

    # -- protocol --------------------------------------------------------------------------

    def search(self, vectors: np.ndarray, k: int, filter: dict[str, Any] | None = None, *,
               texts: Sequence[str] | None = None) -> SearchResult:
        """Indexed search with nprobes/refine_factor, one query at a time."""
        return self._run(vectors, k, filter, exact=False)

    def exact_search(self, vectors: np.ndarray, k: int, filter: dict[str, Any] | None = None, *,
                     texts: Sequence[str] | None = None,
                     budget: float | None = None) -> SearchResult:
        """The true top-k: ``.bypass_vector_index()`` per query, or one pass over the record
        batches (the filter applied by LanceDB) for all queries."""
        cfg = self.config
        k = check_k(self.name, k)
        with self._errors():
            dimension = self._dimension()
            queries = self.check_queries(vectors, dimension)
            where, metric, table = self._where(filter), self._metric(), self._tbl()
            total = int(table.count_rows(where))
            mode = choose_mode(cfg.exact_mode, _COSTS, queries=len(queries), total=total,
                               dimension=dimension)
            if mode == "engine":
                clock = Budget(self.name, budget, total=total, queries=len(queries))
                return self._run(vectors, k, filter, exact=True, clock=clock)
            reader = table.search().select([cfg.id_column, cfg.vector_column]).limit(None)
            if where is not None:
                reader = reader.where(where)
            blocks = ((_Column(batch.column(cfg.id_column)),
                       batch.column(cfg.vector_column).flatten().to_numpy().reshape(
                           -1, dimension)) for batch in reader.to_batches(
                               rows_within(cfg.exact_memory, dimension)))
            # FAISS similarity -> LanceDB distance (1 - cosine, 1 - dot)
            return stream_exact(self.name, queries, k, metric, blocks, total=total,
                                budget=budget, scale=None if metric == "l2" else one_minus)

    def _run(self, vectors: np.ndarray, k: int, filter: dict[str, Any] | None,
             exact: bool, clock: Budget | None = None) -> SearchResult:
        k = check_k(self.name, k)
        with self._errors():
            queries = self.check_queries(vectors, self._dimension())
            where, metric, table = self._where(filter), self._metric(), self._tbl()
            ids, scores, latencies = [], [], []
            for done, query in enumerate(queries, 1):
                start = time.perf_counter()
                builder = (table.search(query, vector_column_name=self.config.vector_column)
                           .distance_type(_DISTANCE[metric]).limit(k)
                           .select([self.config.id_column, "_distance"]))
                if where is not None:
                    builder = builder.where(where, prefilter=True)
                if exact:
                    builder = builder.bypass_vector_index()
                else:
                    if self.config.nprobes is not None:
                        builder = builder.nprobes(self.config.nprobes)
                    if self.config.refine_factor is not None:
                        builder = builder.refine_factor(self.config.refine_factor)
                rows = builder.to_arrow()
                latencies.append(time.perf_counter() - start)
                ids.append([str(i) for i in rows[self.config.id_column].to_pylist()])
                scores.append([float(d) for d in rows["_distance"].to_pylist()])
                if clock is not None:
                    clock.check(clock.total, queries=done)
        return SearchResult(ids, scores, latencies, exact=exact,
                            exact_mode="engine" if exact else None,
                            scanned=clock.total if clock is not None else None)

    def fetch(self, ids: list[str]) -> Vectors:
        cfg = self.config
        found: dict[str, np.ndarray] = {}
        with self._errors():
            table = self._tbl()
            dimension = self._dimension()
            is_int = _is_int(table.schema.field(cfg.id_column).type)
            keys = [int(i) for i in ids if _int_like(i)] if is_int else list(ids)
            for start in range(0, len(keys), 1000):
                chunk = keys[start:start + 1000]
                rows = (table.search().where(f"{cfg.id_column} IN "
                                             f"({', '.join(_literal(v) for v in chunk)})")
                        .select([cfg.id_column, cfg.vector_column]).limit(len(chunk))
                        .to_arrow())
                vecs = rows[cfg.vector_column].combine_chunks().flatten().to_numpy()
                vecs = vecs.reshape(-1, dimension).astype(np.float32)
                found.update(zip((str(i) for i in rows[cfg.id_column].to_pylist()), vecs,
                                 strict=True))
        return vectors_in_order(ids, found, dimension)

    def document_ids(self, ids: Sequence[str], field: str) -> dict[str, str]:
        """The column ``field`` of each row of ``ids`` (null: left out)."""
        cfg = self.config
        found: dict[str, str] = {}
        with self._errors():
            table = self._tbl()
            columns = table.schema.names
            if field not in columns or not set(field) <= _COLUMN_CHARS:
                raise TargetError(self.name, f"table {cfg.table!r} has no column {field!r} to "
                                  f"read documents from; columns: {', '.join(columns)}")
            is_int = _is_int(table.schema.field(cfg.id_column).type)
            keys = [int(i) for i in ids if _int_like(i)] if is_int else list(ids)
            for start in range(0, len(keys), 1000):
                chunk = keys[start:start + 1000]
                rows = (table.search().where(f"{cfg.id_column} IN "
                                             f"({', '.join(_literal(v) for v in chunk)}) AND "
                                             f"{field} IS NOT NULL")
                        .select([cfg.id_column, field]).limit(len(chunk)).to_arrow())
                found.update(zip((str(i) for i in rows[cfg.id_column].to_pylist()),
                                 (str(v) for v in rows[field].to_pylist()), strict=True))
        return found

    def sample(self, n: int, seed: int) -> Vectors:
        with self._errors():
            # ids only: reading the vectors of the whole table just to draw from it would not fit
            column = (self._tbl().search().select([self.config.id_column]).limit(None)
                      .to_arrow().column(self.config.id_column).to_pylist())
        return self.fetch(choose([str(i) for i in column], n, seed))

    def count(self) -> int:
        with self._errors():
            return int(self._tbl().count_rows())

    def describe(self) -> Description:
        import lancedb

        cfg = self.config
        with self._errors():
            table = self._tbl()
            index, stats = self._index()
            params: dict[str, Any] = {"table": cfg.table, "nprobes": cfg.nprobes,
                                      "refine_factor": cfg.refine_factor}
            if index is not None:
                params.update(index_type=stats.index_type,
                              index_details=_plain(getattr(index, "index_details", None)))
            id_type: Literal["int", "str"] = (
                "int" if _is_int(table.schema.field(cfg.id_column).type) else "str")
            unindexed = int(stats.num_unindexed_rows) if stats is not None else None
            return Description("lancedb", lancedb.__version__, self._dimension(), self._metric(),
                               self.count(), id_type, params,
                               {"num_unindexed_rows": unindexed, "version": table.version})


def _table_names(db: Any) -> list[str]:
    names: list[str] = []
    token = None
    while True:  # the listing is paged
        page = db.list_tables(page_token=token)
        names.extend(page.tables)
        token = page.page_token
        if not token:
            return names


def _literal(value: Any) -> str:
    """A SQL literal for a LanceDB filter (strings quoted, quotes doubled)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _is_int(arrow_type: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_integer(arrow_type))


def _int_like(value: str) -> bool:
    try:
        int(value)
    except (TypeError, ValueError):
        return False
    return True


def _plain(value: Any) -> Any:
    """Index details as JSON-able data, without run-time hints that are not configuration."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != "runtime_hints"}
    return value


class _Column:
    """Ids of a record batch's id column, as strings, converted when looked up."""

    def __init__(self, column: Any):
        self.column = column

    def __len__(self) -> int:
        return len(self.column)

    def __getitem__(self, i: int) -> str:
        return str(self.column[i].as_py())
