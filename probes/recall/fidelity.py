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

from collections.abc import Iterator, Mapping, Sequence
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
    cosine: CosineRanking = "direction", known: Sequence[Mapping[str, float]] | None = None,
    affine: tuple[float, float] = (1.0, 0.0),
) -> list[dict[str, dict[str, Any]]]:
    """Stored fidelity (``recall`` and ``shortfall`` by k as a string) of each query, from
    its (live ids, exact ids): what :func:`query_fidelity` gives each, computed for all
    queries at once. Distances of every (query, id) pair come from a few array operations;
    a query with an id whose vector was not fetched takes the one-query path.

    ``known`` gives each query's distances by id instead (from the searches' own scores,
    when the target's scores are the metric's distances over the vectors as stored:
    ``Description.scores_are_distances``); nothing is recomputed then. ``affine`` = (sign,
    offset) turns a known value into a distance: ``offset + sign * value``."""
    ks = list(ks)
    live_u = [list(dict.fromkeys(live)) for live, _ in sides]
    truth_u = [list(dict.fromkeys(exact)) for _, exact in sides]
    dists: Sequence[Mapping[str, float]]
    if known is None:
        pairs = [[i for i in dict.fromkeys([*lu, *tu]) if i in vectors]
                 for lu, tu in zip(live_u, truth_u, strict=True)]
        values = pair_distances(queries, pairs, vectors, metric, cosine)
        computed, start = [], 0
        for ids in pairs:
            computed.append(dict(zip(ids, values[start:start + len(ids)], strict=True)))
            start += len(ids)
        dists = computed
    else:
        dists = known
    width = max((len(x) for x in (*live_u, *truth_u)), default=0) or 1
    n = len(sides)
    # every query's distances in one flat list per side (NaN: an id without a distance),
    # placed into (query, rank) matrices in one step
    live_d = _matrix([dist.get(d, np.nan) for lu, dist in zip(live_u, dists, strict=True)
                      for d in lu], [len(lu) for lu in live_u], width)
    truth_d = _matrix([dist.get(d, np.nan) for tu, dist in zip(truth_u, dists, strict=True)
                       for d in tu], [len(tu) for tu in truth_u], width)
    n_truth = np.array([len(t) for t in truth_u])
    n_live = np.array([len(lu) for lu in live_u])
    cols = np.arange(width)
    # an id without a distance: ties cannot be told for that query (the one-query path)
    slow = np.flatnonzero(np.isnan(np.where(cols < n_live[:, None], live_d, 0.0)).any(axis=1)
                          | np.isnan(np.where(cols < n_truth[:, None], truth_d, 0.0)).any(axis=1))
    live_d[slow], truth_d[slow] = np.nan, np.nan
    sign, offset = affine
    if affine != (1.0, 0.0):
        live_d, truth_d = offset + sign * live_d, offset + sign * truth_d
    live_d[np.isnan(live_d)], truth_d[np.isnan(truth_d)] = np.inf, -np.inf
    kth_all = np.maximum.accumulate(truth_d, axis=1)  # the k-th distance: a prefix max
    keys = [str(k) for k in ks]
    recall, short = [], []
    # distinct live ids in the first k results (a list with a repeated id counts it once)
    distinct = {k: np.minimum(k, n_live) for k in ks}
    for i, (live, _) in enumerate(sides):
        if len(live) != n_live[i]:
            for k in ks:
                distinct[k][i] = len(set(live[:k]))
    for k in ks:
        m = np.minimum(k, n_truth)
        kth = kth_all[np.arange(n), np.maximum(m - 1, 0)]
        kth = np.where(np.isfinite(kth), kth, 0.0)  # no ground truth (or a slow-path row)
        threshold = kth + epsilon * np.maximum(1.0, np.abs(kth))
        hits = np.sum(live_d[:, :k] <= threshold[:, None], axis=1)
        recall.append(np.where(m == 0, 1.0, np.minimum(hits, m) / np.maximum(m, 1)).tolist())
        short.append((distinct[k] < m).tolist())
    out: list[dict[str, dict[str, Any]]] = [
        {"recall": dict(zip(keys, r, strict=True)), "shortfall": dict(zip(keys, f, strict=True))}
        for r, f in zip(zip(*recall, strict=True), zip(*short, strict=True), strict=True)]
    for i in slow.tolist():  # what query_fidelity gives: unknown ids count only when in the truth
        dist = {d: offset + sign * v for d, v in dists[i].items()}
        out[i]["recall"] = {str(k): tie_tolerant_recall(*sides[i], dist, k, epsilon)
                            for k in ks}
    return out


def _matrix(values: list[float], lengths: list[int], width: int) -> np.ndarray:
    """Rows of ``lengths[i]`` values each (from the flat ``values``), NaN after them."""
    out = np.full((len(lengths), width), np.nan)
    if values:
        counts = np.asarray(lengths)
        rows = np.repeat(np.arange(len(lengths)), counts)
        starts = np.cumsum(counts) - counts
        out[rows, np.arange(len(values)) - np.repeat(starts, counts)] = values
    return out


class StoredVectors(Mapping[str, np.ndarray]):
    """Fetched vectors as one matrix with a row per id, kept in the type they came in (a
    float64 copy of tens of thousands of rows costs more than the distances): a mapping
    from id to its vector, without a copy per vector. Distances are taken in float64 per
    query (:func:`pair_distances`)."""

    def __init__(self, ids: Sequence[str], matrix: np.ndarray):
        matrix = np.asarray(matrix)
        self.matrix = matrix.reshape(len(ids), -1) if len(ids) else matrix.reshape(0, 1)
        self.row = {d: n for n, d in enumerate(ids)}

    def __getitem__(self, key: str) -> np.ndarray:
        vector: np.ndarray = self.matrix[self.row[key]]
        return vector

    def __contains__(self, key: object) -> bool:
        return key in self.row

    def __iter__(self) -> Iterator[str]:
        return iter(self.row)

    def __len__(self) -> int:
        return len(self.row)


def pair_distances(
    queries: np.ndarray, pairs: Sequence[Sequence[str]], vectors: Mapping[str, np.ndarray],
    metric: str, cosine: CosineRanking = "direction",
) -> list[float]:
    """:func:`distances` of query i to each of ``pairs[i]``, flattened in that order: one
    small matrix product per query over rows of the stored matrix."""
    if not any(pairs):
        return []
    if not isinstance(vectors, StoredVectors):
        names = list(dict.fromkeys(d for ids in pairs for d in ids))
        vectors = StoredVectors(names, np.stack([vectors[d] for d in names]))
    stored, row = vectors.matrix, vectors.row
    q = np.asarray(queries, dtype=np.float64).reshape(len(pairs), -1)
    direction = metric == "cosine" and cosine != "query"
    out: list[float] = []
    for query, ids in zip(q, pairs, strict=True):
        if not ids:
            continue
        rows = [row[d] for d in ids]
        sub = stored[rows].astype(np.float64)
        if metric == "l2":
            out.extend(np.sum((sub - query) ** 2, axis=1).tolist())
            continue
        dot = sub @ query
        if metric == "ip":
            out.extend((-dot).tolist())
        elif not direction:  # cosine ranked by the unit query against the stored vector
            out.extend((1.0 - dot / max(float(np.linalg.norm(query)), 1e-30)).tolist())
        else:
            scale = np.maximum(np.linalg.norm(sub, axis=1) * np.linalg.norm(query), 1e-30)
            out.extend((1.0 - dot / scale).tolist())
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
