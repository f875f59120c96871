"""pgvector's stored vectors read in one pass: ``COPY (SELECT id::text, vector FROM table
WHERE ...) TO STDOUT (FORMAT BINARY)``, parsed into blocks of float32 vectors.

The binary COPY stream is parsed here rather than row by row through psycopg's loaders:
each row is a field count, then each field as a 4-byte length and its bytes; a pgvector
value is ``int16 dim, int16 unused, dim x float32`` (big-endian). Vector bytes of a block
are gathered into one buffer and converted by numpy once, so a row costs a few slicing
operations in Python instead of a loader call and a small array each.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ragmon.monitor.targets._exact import Costs, rows_within, stream_exact
from ragmon.monitor.targets.abc import Metric, SearchResult

#: pgvector's two ways to ground truth, in seconds (``Costs``), measured on 1,000,000 x 384
#: by bench/ground_truth.py (docs/benchmarks.md): a forced sequential scan per query (0.77 s),
#: or one binary COPY of the table parsed here (about 33 s). Streaming wins from about 50
#: queries on.
COSTS = Costs(per_query=2e-3, engine_row=7.7e-7, read_row=3.3e-5, setup=5e-3)

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_HEADER = len(_SIGNATURE) + 8  # signature, flags (int32), header extension length (int32)
_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_ROW = struct.Struct(">hi")  # a row's field count, then its first field's length


class CopyFormatError(ValueError):
    """The COPY stream is not the binary format of (text, vector) rows expected."""


def copy_blocks(chunks: Iterable[bytes | memoryview], dimension: int,
                rows: int) -> Iterator[tuple[list[str], np.ndarray]]:
    """Blocks of up to ``rows`` (ids, vectors) parsed from binary COPY ``chunks`` of rows
    ``(text id, vector(dimension))``; rows whose id or vector is NULL are skipped.

    The server sends one row per message, so a chunk is usually exactly one row: it is
    parsed in place, and only a row split across chunks is buffered."""
    held = b""
    header = False
    ids: list[str] = []
    parts: list[bytes] = []
    width = 4 + 4 * dimension  # bytes of one vector value
    for chunk in chunks:
        data = held + bytes(chunk) if held else bytes(chunk)
        pos, end = 0, len(data)
        if not header:
            if end >= len(_SIGNATURE) and data[:len(_SIGNATURE)] != _SIGNATURE:
                raise CopyFormatError("not a binary COPY stream")
            if end < _HEADER or end < _HEADER + _INT32.unpack_from(data, _HEADER - 4)[0]:
                held = data  # the header, with its extension, is not all here yet
                continue
            pos, header = _HEADER + _INT32.unpack_from(data, _HEADER - 4)[0], True
        while end - pos >= 2:
            if end - pos < 6:  # the trailer (-1), or a row cut short
                if _INT16.unpack_from(data, pos)[0] == -1:
                    pos = end
                break
            fields, id_len = _ROW.unpack_from(data, pos)
            if fields != 2:
                if fields == -1:
                    pos = end
                    break
                raise CopyFormatError(f"expected 2 fields per row, got {fields}")
            vec_at = pos + 6 + (id_len if id_len > 0 else 0)
            if end - vec_at < 4:
                break
            vec_len = _INT32.unpack_from(data, vec_at)[0]
            row_end = vec_at + 4 + (vec_len if vec_len > 0 else 0)
            if row_end > end:
                break
            if vec_len == width and id_len >= 0:
                ids.append(data[pos + 6:vec_at].decode())
                parts.append(data[vec_at + 8:row_end])
            elif vec_len >= 0 and id_len >= 0:
                raise CopyFormatError(f"a vector of {(vec_len - 4) // 4} dimensions in a "
                                      f"column of {dimension}")
            pos = row_end
            if len(ids) >= rows:
                yield ids, _floats(b"".join(parts), dimension)
                ids, parts = [], []
        held = data[pos:] if pos < end else b""
    if ids:
        yield ids, _floats(b"".join(parts), dimension)


def _floats(data: bytes, dimension: int) -> np.ndarray:
    return np.frombuffer(data, dtype=">f4").reshape(-1, dimension).astype(np.float32)


def estimated_rows(cur: Any, table: str, where_sql: str, params: list[Any]) -> int:
    """The planner's estimate of the rows ``WHERE where_sql`` selects (no scan)."""
    cur.execute(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {table} WHERE {where_sql}", params)
    plan = cur.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return max(0, int(plan[0]["Plan"]["Plan Rows"]))


def to_engine_scores(metric: Metric, scores: list[list[float]]) -> list[list[float]]:
    """FAISS scores (cosine similarity, inner product, squared L2) on pgvector's operator
    scale (``<=>`` 1 - cosine, ``<#>`` the negated inner product, ``<->`` L2)."""
    if metric == "cosine":
        return [[1.0 - s for s in row] for row in scores]
    if metric == "ip":
        return [[-s for s in row] for row in scores]
    return [[math.sqrt(max(s, 0.0)) for s in row] for row in scores]


def stream(target: str, cur: Any, cfg: Any, where: tuple[str, list[Any]], queries: np.ndarray,
           k: int, metric: Metric, *, total: int,
           budget: float | None) -> SearchResult:
    """Exact top-k of ``queries`` over the rows of table ``cfg.table`` (a PgvectorConfig)
    matching ``where`` (SQL and its parameters), in one binary COPY; scores on pgvector's
    scale. The statement may run for the budget (and the usual timeout after it); without a
    budget, for as long as the table takes to read."""
    ident, vector = quote(cfg.id_column), quote(cfg.vector_column)
    sql = (f"COPY (SELECT {ident}::text, {vector} FROM {quote(cfg.table)} WHERE {vector} IS "
           f"NOT NULL AND {where[0]}) TO STDOUT (FORMAT BINARY)")
    limit = 0 if budget is None else int((budget + cfg.timeout) * 1000)
    cur.execute(f"SET LOCAL statement_timeout = {limit}")
    dimension = queries.shape[1]
    with cur.copy(sql, where[1]) as copy:
        blocks = copy_blocks(copy, dimension, rows_within(cfg.exact_memory, dimension))
        return stream_exact(target, queries, k, metric, blocks, total=total, budget=budget,
                            scale=lambda scores: to_engine_scores(metric, scores))


def quote(identifier: str) -> str:
    """A plain (validated) identifier, or schema.table, double-quoted for SQL."""
    return ".".join(f'"{part}"' for part in identifier.split("."))
