"""Cluster occupancy: which regions of the embedding space gained or lost share.

k-means is fitted on the reference; both windows are assigned to its centroids, and the
Jensen–Shannon divergence between the two vectors of cluster shares says how much the mix
of topics moved. The clusters that grew or shrank most, with example texts and a label
each, are the explanation a human reads: a grown cluster is labelled from the current rows
that made it grow, a shrunk one from the reference rows it lost (``cluster_labels``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field

from ragmon.monitor.config import Strict
from ragmon.probes.drift.methods import cluster_labels
from ragmon.probes.drift.methods._base import (
    MethodResult,
    check_pair,
    permutation_p_value,
)
from ragmon.probes.drift.methods.mmd import _sq_dists, median_gamma, witness


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen–Shannon divergence in bits (0 = equal, 1 = disjoint), along the last axis."""
    mid = (p + q) / 2.0

    def kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        safe = np.where(a > 0, a / np.where(b > 0, b, 1.0), 1.0)
        divergence: np.ndarray = (a * np.log2(safe)).sum(-1)
        return divergence

    return 0.5 * kl(p, mid) + 0.5 * kl(q, mid)


def _examples(
    rows: np.ndarray, texts: Sequence[str] | None, ids: Sequence[str] | None,
) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for i in rows:
        item: dict[str, object] = {"row": int(i)}
        if texts is not None:
            item["text"] = str(texts[i])[:300]
        if ids is not None:
            item["id"] = str(ids[i])
        out.append(item)
    return out


def _classes(labels: np.ndarray, texts: Sequence[str], k: int,
             exclude: np.ndarray) -> list[list[str]]:
    """Texts of one window by cluster, leaving out ``exclude`` (the rows being labelled)."""
    keep = np.ones(labels.size, dtype=bool)
    keep[exclude] = False
    return [[texts[int(i)] for i in np.flatnonzero((labels == j) & keep)] for j in range(k)]


def clusters(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    alpha: float = 0.05,
    k: int = 24,
    top: int = 3,
    examples: int = 3,
    permutations: int = 200,
    texts: Sequence[str] | None = None,
    ids: Sequence[str] | None = None,
    reference_texts: Sequence[str] | None = None,
    min_samples: int = 50,
    seed: int = 0,
) -> MethodResult:
    """Jensen–Shannon divergence of k-means cluster shares, with the clusters that moved.

    Parameters
    ----------
    alpha : float
        Level of the permutation test on the JS divergence (windows' rows re-split at
        random, cluster assignments kept).
    k : int
        Number of k-means clusters fitted on the reference (k-means++ seeding). 16–32 keeps
        clusters topic-sized for a few hundred to a few thousand reference rows; capped at
        n/10 so that every cluster has rows to estimate its share from.
    top : int
        How many of the clusters that grew most and shrank most to report.
    examples : int
        Up to this many current-window items per reported cluster: for a cluster that
        grew, the rows that made it grow (its ``excess`` current members where the current
        window is densest relative to the reference, by MMD witness) nearest their own
        centre; for one that shrank, its current members nearest its centroid, and as
        ``reference_examples`` the reference rows it lost, nearest their centre.
    permutations : int
        Number P of permutations; p = (r + 1) / (P + 1).
    texts, ids : sequences, optional
        Text and id of each current row, quoted in the examples; with texts, a grown
        cluster gets a ``label`` and ``terms`` (its distinctive words, c-TF-IDF).
    reference_texts : sequence, optional
        Text of each reference row: the background of the terms, and the label of a
        shrunk cluster (from the rows it lost).
    min_samples : int
        Fewer rows in either window raise InsufficientData.
    seed : int
        Seeds k-means and the permutations.
    """
    ref, cur = check_pair(reference, current, min_samples)
    n, m = ref.shape[0], cur.shape[0]
    k_used = int(max(2, min(k, n // 10)))
    rng = np.random.default_rng(seed)
    from sklearn.cluster import KMeans  # lazily, as in classifier.py

    model = KMeans(n_clusters=k_used, n_init=1, max_iter=100, random_state=seed).fit(ref)
    centroids = model.cluster_centers_.astype(np.float32)
    ref_d = _sq_dists(ref, centroids)
    cur_d = _sq_dists(cur, centroids)
    labels = np.concatenate([ref_d.argmin(1), cur_d.argmin(1)])
    onehot = np.eye(k_used, dtype=np.float32)[labels]
    a0 = np.concatenate([np.ones(n, np.float32), np.zeros(m, np.float32)])
    a = np.concatenate([a0[None, :], rng.permuted(np.tile(a0, (permutations, 1)), axis=1)])
    ref_counts = a @ onehot
    cur_counts = onehot.sum(0) - ref_counts
    divergences = js_divergence(ref_counts / n, cur_counts / m)
    observed = float(divergences[0])
    p = permutation_p_value(observed, divergences[1:])
    share_ref, share_cur = ref_counts[0] / n, cur_counts[0] / m
    delta = share_cur - share_ref
    cur_labels, ref_labels = labels[n:], labels[:n]
    gamma = median_gamma(ref, seed=seed)
    cur_texts = None if texts is None else [t or "" for t in texts]
    ref_texts = None if reference_texts is None else [t or "" for t in reference_texts]

    wit = witness(cur, ref, cur, gamma)
    ref_wit = None if ref_texts is None else witness(ref, ref, cur, gamma)

    def grown(c: int, entry: dict[str, object]) -> None:
        moved = cluster_labels.movers(np.flatnonzero(cur_labels == c), float(delta[c]) * m, wit)
        order = cluster_labels.nearest_centre(moved, cur)
        if cur_texts is not None:
            background = (_classes(ref_labels, ref_texts, k_used, np.array([], int))
                          if ref_texts is not None
                          else _classes(cur_labels, cur_texts, k_used, moved))
            entry["label"], entry["terms"] = cluster_labels.label(order, cur_texts, background)
        entry["examples"] = _examples(order[:examples], texts, ids)

    def shrunk(c: int, entry: dict[str, object]) -> None:
        members = np.flatnonzero(cur_labels == c)
        nearest = members[np.argsort(cur_d[members, c], kind="stable")[:examples]]
        entry["examples"] = _examples(nearest, texts, ids)
        if ref_texts is None or ref_wit is None:
            return
        lost = cluster_labels.movers(np.flatnonzero(ref_labels == c), -float(delta[c]) * n,
                                     -ref_wit)
        order = cluster_labels.nearest_centre(lost, ref)
        background = _classes(ref_labels, ref_texts, k_used, lost)
        entry["label"], entry["terms"] = cluster_labels.label(order, ref_texts, background)
        entry["reference_examples"] = _examples(order[:examples], ref_texts, None)

    def describe(c: int, grew: bool) -> dict[str, object]:
        entry: dict[str, object] = {
            "cluster": c, "reference_share": round(float(share_ref[c]), 4),
            "current_share": round(float(share_cur[c]), 4), "change": round(float(delta[c]), 4),
        }
        (grown if grew else shrunk)(c, entry)
        return entry

    order = np.argsort(-delta, kind="stable")
    grew = [describe(int(c), True) for c in order[:top] if delta[c] > 0]
    shrank = [describe(int(c), False) for c in order[::-1][:top] if delta[c] < 0]
    details = {"k": k_used, "grew": grew, "shrank": shrank}
    return MethodResult("clusters", observed, p, None, p <= alpha, details)


class ClustersParams(Strict):
    """Parameters of ``clusters`` a config may set (``method_params: {clusters: ...}``)."""

    k: int = Field(default=24, ge=2)
    """k-means clusters fitted on the reference."""
    top: int = Field(default=3, ge=1)
    """Clusters that grew or shrank most, reported with examples."""
    examples: int = Field(default=3, ge=0)
    """Example texts per reported cluster."""
    permutations: int = Field(default=200, ge=1)
    """Permutations of the Jensen-Shannon divergence's null."""
