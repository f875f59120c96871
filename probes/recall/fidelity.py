"""Index fidelity: how much of the exact top-k the live (approximate) search returns.

No labels are needed. Recall is tie-tolerant in the ann-benchmarks sense: a live result
counts when its distance to the query is at most the true k-th distance plus epsilon, so an
engine that returns a different one of several equidistant documents is not penalised.
Distances are recomputed here, in float64, from vectors fetched from the index: engine
scores may be quantized or on another scale. Epsilon is relative: ``eps * max(1, |d_k|)``.

One similarity ranks and breaks ties: the one the target's exact search ranks by. For
``cosine`` a target says which (``VectorTarget.cosine_ranking``): ``"direction"``, the cosine
of query and stored vector (engines that normalise stored vectors or divide by their norms),
or ``"query"``, the inner product of the unit query with the stored vector as stored (FAISS:
vectors are normalised before they are added, and quantized ones decode off the unit sphere;
the index compares by that inner product, and so does its exact search). Mixing the two let
a decoded vector of small norm rank low yet count as a tie, which inflated fidelity on PQ.

``shortfall`` marks a query whose live search returned fewer results than the exact search
did at k (filters, dead tuples, result-size caps). :func:`shortfall` turns the rows into
evidence for the index verdict, at the largest k that came back short and with its likely
cause named from the index description (pgvector returns at most ``hnsw.ef_search`` rows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ragmon.monitor.targets.abc import Description

#: How a target ranks ``cosine`` (see the module docstring).
CosineRanking = Literal["direction", "query"]


def distances(
    query: np.ndarray, vectors: np.ndarray, metric: str, cosine: CosineRanking = "direction",
) -> np.ndarray:
    """Distances (smaller is closer) of ``vectors`` to ``query`` under the index metric;
    ``cosine="query"`` normalises the query only: ``1 - q/|q| . v``."""
    q = np.asarray(query, dtype=np.float64)
    v = np.asarray(vectors, dtype=np.float64).reshape(-1, q.shape[0])
    if metric == "l2":
        squared: np.ndarray = np.sum((v - q) ** 2, axis=1)
        return squared
    if metric == "ip":
        return -(v @ q)
    if cosine == "query":
        unit_query: np.ndarray = 1.0 - (v @ q) / max(float(np.linalg.norm(q)), 1e-30)
        return unit_query
    norms = np.linalg.norm(v, axis=1) * np.linalg.norm(q)
    direction: np.ndarray = 1.0 - (v @ q) / np.maximum(norms, 1e-30)
    return direction


@dataclass
class QueryFidelity:
    recall: dict[int, float] = field(default_factory=dict)
    shortfall: dict[int, bool] = field(default_factory=dict)


def tie_tolerant_recall(
    live: Sequence[str], exact: Sequence[str], dist: Mapping[str, float], k: int,
    epsilon: float = 1e-6,
) -> float:
    """Share of the true top-k that the live top-k matches, counting ties as matches.

    ``dist`` maps ids to recomputed distances; a live id without a distance (its vector
    could not be fetched) counts only if it is in the exact top-k itself.
    """
    truth = list(dict.fromkeys(exact))[:k]
    if not truth:
        return 1.0
    known = [dist[i] for i in truth if i in dist]
    if not known:
        hits = len(set(live[:k]) & set(truth))
        return hits / len(truth)
    kth = max(known)
    threshold = kth + epsilon * max(1.0, abs(kth))
    truth_set = set(truth)
    hits = 0
    for doc in list(dict.fromkeys(live))[:k]:
        if doc in dist:
            hits += dist[doc] <= threshold
        else:
            hits += doc in truth_set
    return min(hits, len(truth)) / len(truth)


def query_fidelity(
    query: np.ndarray, live: Sequence[str], exact: Sequence[str],
    vectors: Mapping[str, np.ndarray], metric: str, ks: Sequence[int], epsilon: float,
    cosine: CosineRanking = "direction",
) -> QueryFidelity:
    """Fidelity of one query at each k; ``cosine`` is the target's ``cosine_ranking``."""
    ids = [i for i in dict.fromkeys([*live, *exact]) if i in vectors]
    dist: dict[str, float] = {}
    if ids:
        values = distances(query, np.stack([vectors[i] for i in ids]), metric, cosine)
        dist = dict(zip(ids, values.tolist(), strict=True))
    out = QueryFidelity()
    for k in ks:
        out.recall[k] = tie_tolerant_recall(live, exact, dist, k, epsilon)
        out.shortfall[k] = len(set(live[:k])) < min(k, len(set(exact)))
    return out


def fidelity_rows(
    queries: np.ndarray, sides: Sequence[tuple[Sequence[str], Sequence[str]]],
    vectors: Mapping[str, np.ndarray], metric: str, ks: Sequence[int], epsilon: float,
    cosine: CosineRanking = "direction",
) -> list[dict[str, dict[str, Any]]]:
    """Stored fidelity (``recall`` and ``shortfall`` by k as a string) of each query, from
    its (live ids, exact ids)."""
    out: list[dict[str, dict[str, Any]]] = []
    for query, (live, exact) in zip(queries, sides, strict=True):
        fid = query_fidelity(query, live, exact, vectors, metric, ks, epsilon, cosine)
        out.append({"recall": {str(k): v for k, v in fid.recall.items()},
                    "shortfall": {str(k): v for k, v in fid.shortfall.items()}})
    return out


@dataclass
class Shortfall:
    """Queries short at ``k`` (the largest k with any), as a share, and the likely cause."""

    k: int
    ratio: float
    cause: str


def shortfall(rows: Mapping[str, Mapping[str, Any]], ks: Sequence[int],
              desc: Description) -> Shortfall | None:
    """Shortfall evidence from the probe's rows (each with ``fidelity`` and the live chunk
    ids), or None when no query came back short at any k."""
    measured = [r for r in rows.values() if "fidelity" in r]
    short_ks = [k for k in ks if any(r["fidelity"]["shortfall"][str(k)] for r in measured)]
    if not short_ks:
        return None
    k = max(short_ks)
    short = [r for r in measured if r["fidelity"]["shortfall"][str(k)]]
    got = max(len(set(r.get("chunks", r)["live"]["ids"][:k])) for r in short)
    return Shortfall(k, len(short) / len(measured), shortfall_cause(desc, k, got))


def shortfall_cause(desc: Description, k: int, got: int) -> str:
    """The likely reason live searches returned at most ``got`` < ``k`` results."""
    params, engine = desc.params, desc.engine
    ddl = " ".join(str(d) for d in params.get("indexes") or [])
    ef, probes = params.get("ef_search"), params.get("probes")
    if engine == "pgvector" and "USING hnsw" in ddl:
        if ef is not None and got <= ef < k:
            return (f"results capped at {got} by hnsw.ef_search, below k={k}; set ef_search "
                    f"to at least {k}")
        if desc.stats.get("n_dead_tup"):
            return (f"{desc.stats['n_dead_tup']} dead tuples not yet vacuumed take places in "
                    "the HNSW search; VACUUM the table")
    if engine == "pgvector" and "USING ivfflat" in ddl:
        return f"the {probes} probed ivfflat lists held fewer than k={k} rows; raise probes"
    if engine == "faiss" and params.get("nprobe") is not None:
        return (f"the {params['nprobe']} probed IVF lists (of {params.get('nlist')}) held "
                f"fewer than k={k} vectors; raise nprobe")
    return "filtering, dead tuples or a result-size cap"


def latency_quantiles(latencies: Sequence[float]) -> dict[str, float]:
    """p50, p95 and max of per-query search latencies (seconds), keyed by ``stat`` label.

    The label is not ``quantile``: Prometheus reserves that for summaries, and these are
    exported as gauges (``promtool check metrics`` rejects a gauge with a quantile label).
    """
    arr = np.asarray([x for x in latencies if x is not None and np.isfinite(x)], dtype=float)
    if arr.size == 0:
        return {}
    return {
        "p50": float(np.quantile(arr, 0.5)),
        "p95": float(np.quantile(arr, 0.95)),
        "max": float(arr.max()),
    }
