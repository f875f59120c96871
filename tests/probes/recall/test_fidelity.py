"""Tie-tolerant index fidelity on crafted ties, shortfall, and distance recomputation."""

from __future__ import annotations

import numpy as np
import pytest

from ragmon.probes.recall.fidelity import (
    distances,
    latency_quantiles,
    query_fidelity,
    tie_tolerant_recall,
)

Q = np.array([1.0, 0.0, 0.0], dtype=np.float32)
V = {
    "a": np.array([1.0, 0.0, 0.0]),     # closest
    "b": np.array([0.6, 0.8, 0.0]),     # b, c and c2 are equidistant from Q
    "c": np.array([0.6, 0.0, 0.8]),
    "c2": np.array([0.6, -0.8, 0.0]),
    "far": np.array([0.0, 1.0, 0.0]),
}


@pytest.mark.parametrize("metric", ["ip", "cosine", "l2"])
def test_an_equidistant_substitute_counts_as_a_match(metric: str) -> None:
    fid = query_fidelity(Q, ["a", "c"], ["a", "b"], V, metric, [1, 2], 1e-6)
    assert fid.recall == {1: 1.0, 2: 1.0}
    fid = query_fidelity(Q, ["a", "c2", "b"], ["a", "b", "c"], V, metric, [3], 1e-6)
    assert fid.recall == {3: 1.0}


@pytest.mark.parametrize("metric", ["ip", "cosine", "l2"])
def test_a_farther_document_does_not(metric: str) -> None:
    fid = query_fidelity(Q, ["a", "far"], ["a", "b"], V, metric, [1, 2], 1e-6)
    assert fid.recall == {1: 1.0, 2: 0.5}
    assert fid.shortfall == {1: False, 2: False}


def test_epsilon_is_relative_to_the_kth_distance() -> None:
    dist = {"a": 0.0, "b": 100.0, "near": 100.00005, "off": 100.01}
    assert tie_tolerant_recall(["a", "near"], ["a", "b"], dist, 2, epsilon=1e-6) == 1.0
    assert tie_tolerant_recall(["a", "off"], ["a", "b"], dist, 2, epsilon=1e-6) == 0.5


def test_duplicates_in_the_live_list_count_once() -> None:
    dist = {"a": 0.0, "b": 1.0}
    assert tie_tolerant_recall(["a", "a"], ["a", "b"], dist, 2) == 0.5


def test_shortfall_is_fewer_live_results_than_exact_ones() -> None:
    fid = query_fidelity(Q, ["a"], ["a", "b", "c"], V, "ip", [1, 3], 1e-6)
    assert fid.shortfall == {1: False, 3: True} and fid.recall[3] == pytest.approx(1 / 3)
    # an index with only two vectors is no shortfall at k=3
    fid = query_fidelity(Q, ["a", "b"], ["a", "b"], V, "ip", [3], 1e-6)
    assert fid.shortfall == {3: False} and fid.recall[3] == 1.0


def test_unfetchable_ids_fall_back_to_id_overlap() -> None:
    assert tie_tolerant_recall(["a", "x"], ["a", "b"], {}, 2) == 0.5
    assert tie_tolerant_recall(["a", "b"], ["a", "b"], {"a": 0.0}, 2) == 1.0


def test_distances_per_metric() -> None:
    vecs = np.stack([V["a"], V["far"]])
    assert distances(Q, vecs, "l2").tolist() == pytest.approx([0.0, 2.0])
    assert distances(Q, vecs, "ip").tolist() == pytest.approx([-1.0, 0.0])
    assert distances(Q, vecs * 3, "cosine").tolist() == pytest.approx([0.0, 1.0])


def test_latency_stats() -> None:
    stats = latency_quantiles([0.001 * i for i in range(1, 101)] + [float("nan")])
    assert stats["max"] == pytest.approx(0.1) and stats["p50"] == pytest.approx(0.0505)
    assert latency_quantiles([]) == {}


def test_vector_sample_stats() -> None:
    from ragmon.probes.recall.evidence import vector_stats

    vecs = np.array([[3.0, 4.0], [3.0, 4.0], [0.0, 0.0], [np.nan, 1.0], [1.0, 0.0]])
    stats = vector_stats(vecs)
    assert stats["n"] == 5 and stats["nan"] == 1 and stats["zero"] == 1
    assert stats["duplicates"] == 1
    assert stats["norm"]["max"] == 5.0 and stats["norm"]["min"] == 0.0
    assert vector_stats(np.zeros((0, 2))) == {"n": 0}
