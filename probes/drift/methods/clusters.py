"""Cluster occupancy: which regions of the embedding space gained or lost share.

k-means is fitted on the reference; both windows are assigned to its centroids, and the
Jensen–Shannon divergence between the two vectors of cluster shares says how much the mix
of topics moved. The clusters that grew or shrank most, with example texts from the
current window, are the explanation a human reads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field

from ragmon.monitor.config import Strict
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
    members: np.ndarray, score: np.ndarray, texts: Sequence[str] | None,
    ids: Sequence[str] | None, limit: int,
) -> list[dict[str, object]]:
    chosen = members[np.argsort(-score[members], kind="stable")[:limit]]
    out: list[dict[str, object]] = []
    for i in chosen:
        item: dict[str, object] = {"row": int(i)}
        if texts is not None:
            item["text"] = str(texts[i])[:300]
        if ids is not None:
            item["id"] = str(ids[i])
        out.append(item)
    return out


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
        grew, those where the current window is densest relative to the reference (largest
        MMD witness); for one that shrank, those nearest its centroid.
    permutations : int
        Number P of permutations; p = (r + 1) / (P + 1).
    texts, ids : sequences, optional
        Text and id of each current row, quoted in the examples.
    reference_texts : sequence, optional
        Text of each reference row; the one nearest a centroid labels its cluster.
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
    cur_labels = labels[n:]
    gamma = median_gamma(ref, seed=seed)
    wit = witness(cur, ref, cur, gamma)

    def describe(c: int, grew: bool) -> dict[str, object]:
        members = np.flatnonzero(cur_labels == c)
        score = wit if grew else -cur_d[:, c]
        entry: dict[str, object] = {
            "cluster": c, "reference_share": round(float(share_ref[c]), 4),
            "current_share": round(float(share_cur[c]), 4), "change": round(float(delta[c]), 4),
            "examples": _examples(members, score, texts, ids, examples),
        }
        if reference_texts is not None:
            entry["label"] = str(reference_texts[int(ref_d[:, c].argmin())])[:200]
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
