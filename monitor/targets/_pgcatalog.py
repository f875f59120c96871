"""What a pgvector table is, read from PostgreSQL's catalog: its columns, the vector indexes
on the vector column (operator class, access method, file node), and the extension version;
and the checks a config must pass against it (columns present, knobs that apply, metric)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ragmon.monitor.errors import TargetError
from ragmon.monitor.targets.abc import Metric

OPCLASSES = {"vector_cosine_ops": "cosine", "vector_ip_ops": "ip", "vector_l2_ops": "l2"}
INT_TYPES = {"smallint", "integer", "bigint"}


@dataclass(frozen=True)
class VectorIndex:
    ddl: str
    opclass: str
    method: str  # the access method: hnsw or ivfflat
    filenode: int  # a new one on every rebuild (REINDEX, DROP and CREATE, VACUUM FULL)


def vector_indexes(cur: Any, table: int, column: str) -> list[VectorIndex]:
    """The pgvector indexes whose first column is ``column``, by operator class (not the DDL
    text: pg_get_indexdef omits a default opclass)."""
    cur.execute(
        "SELECT pg_get_indexdef(i.indexrelid), opc.opcname, am.amname, "
        "pg_relation_filenode(i.indexrelid) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
        "JOIN pg_opclass opc ON opc.oid = i.indclass[0] "
        "WHERE i.indrelid = %s AND a.attname = %s ORDER BY i.indexrelid", (table, column))
    return [VectorIndex(ddl, opclass, method, int(node or 0))
            for ddl, opclass, method, node in cur.fetchall() if opclass in OPCLASSES]


def read_table(cur: Any, name: str, cfg: Any, endpoint: str) -> dict[str, Any]:
    """The table's metadata for target ``name`` (a PgvectorConfig ``cfg``); a TargetError
    names what does not match the config."""
    cur.execute("SELECT to_regclass(%s)::oid", (cfg.table,))
    oid = cur.fetchone()[0]
    if oid is None:
        raise TargetError(name, f"table {cfg.table!r} does not exist at {endpoint}")
    cur.execute(
        "SELECT attname, format_type(atttypid, atttypmod), atttypmod FROM pg_attribute "
        "WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped", (oid,))
    columns = {row[0]: (row[1], row[2]) for row in cur.fetchall()}
    indexes = vector_indexes(cur, oid, cfg.vector_column)
    cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    version = cur.fetchone()[0]
    for column in (cfg.id_column, cfg.vector_column, *cfg.filter_columns):
        if column not in columns:
            raise TargetError(name, f"table {cfg.table!r} has no column {column!r}; "
                              f"columns: {', '.join(sorted(columns))}")
    vector_type, dimension = columns[cfg.vector_column]
    if not vector_type.startswith("vector"):
        raise TargetError(name, f"column {cfg.vector_column!r} is {vector_type}, not vector")
    check_knobs(name, cfg, sorted({ix.method for ix in indexes}))
    return {"dimension": int(dimension), "indexes": [ix.ddl for ix in indexes],
            "filenodes": [ix.filenode for ix in indexes],
            "version": version, "columns": sorted(columns),
            "id_type": "int" if columns[cfg.id_column][0] in INT_TYPES else "str",
            "metric": infer_metric(name, cfg, [ix.opclass for ix in indexes])}


def check_knobs(name: str, cfg: Any, methods: list[str]) -> None:
    """Refuse a knob no vector index of the column reads (the server would ignore it)."""
    for knob, value, method in (("ef_search", cfg.ef_search, "hnsw"),
                                ("probes", cfg.probes, "ivfflat")):
        if value is not None and method not in methods:
            raise TargetError(
                name, f"{knob} applies to an {method} index, but the vector indexes on "
                f"{cfg.table}.{cfg.vector_column} are: {', '.join(methods) or 'none'}; "
                f"remove {knob} from the config")


def infer_metric(name: str, cfg: Any, opclasses: list[str]) -> Metric:
    if cfg.metric is not None:
        return cfg.metric  # type: ignore[no-any-return]
    for opclass in opclasses:
        return OPCLASSES[opclass]  # type: ignore[return-value]
    raise TargetError(name, f"table {cfg.table!r} has no vector index to read the metric "
                      "from; set metric (cosine, ip or l2)")
