"""The binary COPY parser: rows split anywhere across chunks, NULLs skipped, blocks of the
asked size, and a stream that is not what it should be refused."""

from __future__ import annotations

import numpy as np
import pytest

from ragmon.monitor.targets._pgstream import CopyFormatError, copy_blocks

DIM = 3


def row(key: str | None, vector: np.ndarray | None) -> bytes:
    out = b"\x00\x02"
    out += b"\xff\xff\xff\xff" if key is None else len(key).to_bytes(4, "big") + key.encode()
    if vector is None:
        return out + b"\xff\xff\xff\xff"
    value = np.array([len(vector), 0], ">i2").tobytes() + np.asarray(vector, ">f4").tobytes()
    return out + len(value).to_bytes(4, "big") + value


def stream(rows: list[bytes]) -> bytes:
    return b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 4 + b"\x00\x00\x00\x02xx" + b"".join(
        rows) + b"\xff\xff"


@pytest.mark.parametrize("cut", [1, 5, 7, 1000])
def test_rows_split_anywhere_parse_into_blocks(cut: int) -> None:
    vectors = np.arange(30, dtype=np.float32).reshape(10, DIM)
    rows = [row(f"id-{i}", v) for i, v in enumerate(vectors)]
    rows[4:4] = [row(None, vectors[0]), row("null-vector", None)]
    data = stream(rows)
    chunks = [data[i:i + cut] for i in range(0, len(data), cut)]
    blocks = list(copy_blocks(chunks, DIM, 4))
    assert [len(ids) for ids, _ in blocks] == [4, 4, 2]
    assert sum((ids for ids, _ in blocks), []) == [f"id-{i}" for i in range(10)]
    np.testing.assert_array_equal(np.vstack([v for _, v in blocks]), vectors)
    assert blocks[0][1].dtype == np.float32


def test_a_stream_that_is_not_binary_copy_or_not_of_this_dimension_is_refused() -> None:
    with pytest.raises(CopyFormatError, match="not a binary COPY"):
        list(copy_blocks([b"id\tembedding\n" * 3], DIM, 4))
    with pytest.raises(CopyFormatError, match="a vector of 2 dimensions in a column of 3"):
        list(copy_blocks([stream([row("a", np.ones(2))])], DIM, 4))
