"""Pieces every adapter shares: error translation at the engine boundary, query timing,
uniform id sampling, filter and ``k`` checks, and the byte-size config type."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import numpy as np
from pydantic import BeforeValidator

from ragmon.monitor.common import redact
from ragmon.monitor.config import config_error
from ragmon.monitor.errors import RagmonError, TargetError, TargetUnavailable
from ragmon.monitor.targets.abc import Vectors

T = TypeVar("T")
Q = TypeVar("Q")

_BYTE_UNITS = {"": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
               "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_BYTES = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


def parse_bytes(value: Any) -> int:
    """Parse a memory size: an integer number of bytes or a string like "512MiB", "2GiB"."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _BYTES.fullmatch(value) if isinstance(value, str) else None
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _BYTE_UNITS or float(match.group(1)) <= 0:
        # the config loader appends ", got <value>"
        raise config_error(
            "byte_size",
            "not a memory size; use a positive number and a unit (KiB, MiB, GiB), like '1GiB'",
            echo_input=True,
        )
    return int(float(match.group(1)) * _BYTE_UNITS[unit])


ByteSize = Annotated[int, BeforeValidator(parse_bytes)]
"""Bytes, written in the config as "512MiB", "1GiB" or a plain integer."""


@contextmanager
def engine_errors(
    target: str,
    endpoint: str,
    *,
    unavailable: tuple[type[BaseException], ...] = (),
    timeouts: tuple[type[BaseException], ...] = (),
    timeout: float | None = None,
    secrets: Sequence[str] = (),
) -> Iterator[None]:
    """Translate whatever an engine client raises into ragmon's TargetError tree.

    ``timeouts`` become TargetUnavailable("... did not answer within Ns"), ``unavailable``
    (and OS connection errors) TargetUnavailable("... is unreachable"), anything else
    TargetError. Errors ragmon raised itself pass through untouched.
    """
    timed_out: tuple[type[BaseException], ...] = (TimeoutError, *timeouts)
    unreachable: tuple[type[BaseException], ...] = (ConnectionError, *unavailable)
    try:
        yield
    except RagmonError:
        raise
    except timed_out as exc:
        within = f" within {timeout:g}s" if timeout is not None else ""
        raise TargetUnavailable(target, f"{endpoint} did not answer{within}") from exc
    except unreachable as exc:
        reason = redact(str(exc).strip() or type(exc).__name__, secrets)
        raise TargetUnavailable(target, f"{endpoint} is unreachable: {reason}") from exc
    except Exception as exc:
        reason = redact(str(exc).strip(), secrets)
        raise TargetError(target, f"{endpoint} failed: {type(exc).__name__}: {reason}") from exc


def check_k(target: str, k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise TargetError(target, f"k must be a positive integer, got {k!r}")
    return int(k)


def check_filter(
    target: str, filter: dict[str, Any] | None, allowed: Sequence[str]
) -> dict[str, Any]:
    """A filter is an equality conjunction ``{column: value}`` over configured columns only."""
    if not filter:
        return {}
    unknown = sorted(set(filter) - set(allowed))
    if unknown:
        valid = ", ".join(allowed) if allowed else "none configured (set filter_columns)"
        raise TargetError(target, f"cannot filter on {unknown}; filterable columns: {valid}")
    for key, value in filter.items():
        if not isinstance(value, str | int | float | bool):
            raise TargetError(
                target, f"filter value for {key!r} must be a string, number or bool, got {value!r}"
            )
    return dict(filter)


def no_filter(target: str, engine: str, filter: dict[str, Any] | None) -> None:
    if filter:
        raise TargetError(target, f"{engine} targets do not support filters, got {filter!r}")


def timed_per_query(
    queries: Iterable[Q], run: Callable[[Q], tuple[list[str], list[float]]]
) -> tuple[list[list[str]], list[list[float]], list[float]]:
    """Run ``run(query)`` once per query row, timing each: the latency a caller would see."""
    ids: list[list[str]] = []
    scores: list[list[float]] = []
    latencies: list[float] = []
    for row in queries:
        start = time.perf_counter()
        row_ids, row_scores = run(row)
        latencies.append(time.perf_counter() - start)
        ids.append(row_ids)
        scores.append(row_scores)
    return ids, scores, latencies


def choose(ids: Sequence[T], n: int, seed: int, *, ordered: bool = False) -> list[T]:
    """Up to ``n`` of ``ids`` drawn uniformly without replacement, the same for the same seed
    and the same set of ids (whatever order the engine listed them in). ``ordered=True``
    says ``ids`` are already sorted by ``str``, as a caller caching them keeps them."""
    ordered_ids = list(ids) if ordered else sorted(ids, key=str)
    if n >= len(ordered_ids):
        return ordered_ids
    picks = np.random.default_rng(seed).choice(len(ordered_ids), size=max(n, 0), replace=False)
    return [ordered_ids[i] for i in sorted(picks.tolist())]


def int_ids(target: str, ids: Sequence[str]) -> tuple[list[int], list[str]]:
    """Split string ids into engine integer keys and those that cannot be integers."""
    keys: list[int] = []
    invalid: list[str] = []
    for i in ids:
        try:
            keys.append(int(i))
        except (TypeError, ValueError):
            invalid.append(i)
    return keys, invalid


def normalised(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms == 0, 1.0, norms)).astype(np.float32)


def vectors_in_order(ids: Sequence[str], found: dict[str, Any], dimension: int,
                     key: Callable[[str], str] = str) -> Vectors:
    """``fetch``'s answer: the vectors of ``ids`` that were found, in the order asked for,
    and the ids that were not. ``key`` maps a requested id to its key in ``found`` (an
    engine may normalise ids)."""
    present = [i for i in ids if key(i) in found]
    arrays = [np.asarray(found[key(i)], dtype=np.float32) for i in present]
    matrix = np.vstack(arrays) if arrays else np.zeros((0, dimension), dtype=np.float32)
    return Vectors(present, matrix, [i for i in ids if key(i) not in found])
