"""Cluster labels on real MiniLM windows of the stdlib corpus: the label of the cluster that
grew must name the module whose chunks were injected into the current window, and the
label of a cluster that shrank must come from the reference.

A label names a module when the module's name is one of the label's distinctive terms, the
label as printed (its first 70 characters) shows it, and most of the texts that stand for
the label (the cluster's examples) are chunks of that module, judged by the corpus' own
module of each row. The 50-window versions are in bench/drift_precision_labels.py.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from ragmon.probes.drift.methods.cluster_labels import class_tfidf
from ragmon.probes.drift.methods.clusters import clusters

WINDOWS = 10
N = 500


def pair(topics: np.ndarray, topic: str, share: float, ref_share: float,
         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a reference with ``ref_share`` of ``topic`` and a current window with
    ``share`` of it, the rest from the other modules; no row in both."""
    pool = np.flatnonzero(topics != topic)
    own = rng.permutation(np.flatnonzero(topics == topic))
    k_ref, k_cur = round(N * ref_share), round(N * share)
    rows = rng.choice(pool, 2 * N - k_ref - k_cur, replace=False)
    return (np.concatenate([rows[:N - k_ref], own[:k_ref]]),
            np.concatenate([rows[N - k_ref:], own[k_ref:k_ref + k_cur]]))


def run(windows, ref: np.ndarray, cur: np.ndarray, seed: int):  # type: ignore[no-untyped-def]
    return clusters(windows.vectors[ref], windows.vectors[cur],
                    texts=[windows.texts[r] for r in cur], ids=[str(r) for r in cur],
                    reference_texts=[windows.texts[r] for r in ref], seed=seed)


def names(entry: dict, topic: str, topics: np.ndarray, rows: list[int]) -> bool:  # type: ignore[type-arg]
    shown = str(entry.get("label") or "")[:70].lower()
    printed = re.search(rf"(?<![\w.]){re.escape(topic)}(?!\w)", shown) is not None
    on_topic = sum(topics[r] == topic for r in rows) * 2 > len(rows)
    return topic in entry.get("terms", []) and printed and on_topic


@pytest.mark.parametrize(("topic", "ref_share"), [("asyncio", 0.0), ("asyncio", 0.02),
                                                  ("decimal", 0.0)])
def test_label_of_the_cluster_that_grew_names_the_injected_module(windows, topic, ref_share) -> None:  # type: ignore[no-untyped-def]
    """20% of the current window from one module, new to the reference or grown from 2%:
    the top grown cluster's label names it in at least 9 of 10 windows (the acceptance is
    45 of 50; 9 of 10 is the same rate). Before: 0, 7 and 0 of 10 (the label was the
    reference text nearest the centroid, from whatever the module landed next to)."""
    rng = np.random.default_rng(60)
    named = 0
    with threadpool_limits(1):
        for i in range(WINDOWS):
            ref, cur = pair(windows.topics, topic, 0.2, ref_share, rng)
            top = run(windows, ref, cur, i).details["grew"][0]
            rows = [int(e["id"]) for e in top["examples"]]
            named += names(top, topic, windows.topics, rows)
    assert named >= 9, named


def test_label_of_the_cluster_that_shrank_comes_from_the_reference(windows) -> None:  # type: ignore[no-untyped-def]
    """The reverse: 20% of the reference is asyncio, the current window has none. The top
    shrunk cluster is labelled from the reference rows it lost, which the current window
    cannot show: its terms and its text name asyncio in at least 9 of 10 windows. (The
    reference text nearest the centroid, the label before, named it too; the terms and the
    lost rows as reference examples are new.)"""
    rng = np.random.default_rng(61)
    named = 0
    with threadpool_limits(1):
        for i in range(WINDOWS):
            cur, ref = pair(windows.topics, "asyncio", 0.2, 0.0, rng)
            top = run(windows, ref, cur, i).details["shrank"][0]
            rows = [int(ref[e["row"]]) for e in top.get("reference_examples", [])]
            named += names(top, "asyncio", windows.topics, rows)
    assert named >= 9, named


def test_label_without_texts_is_absent(windows) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(62)
    ref, cur = pair(windows.topics, "asyncio", 0.2, 0.0, rng)
    res = clusters(windows.vectors[ref], windows.vectors[cur], ids=[str(r) for r in cur])
    assert all("label" not in e and "terms" not in e
               for e in res.details["grew"] + res.details["shrank"])
    assert [int(e["id"]) for e in res.details["grew"][0]["examples"]]


def test_class_tfidf_by_hand() -> None:
    """BERTopic's c-TF-IDF, W = tf(t, c) / words(c) * log(1 + A / f(t)), on two classes
    worked out by hand: A = 5 / 2 words per class; f(apple) = f(banana) = 2, f(cherry) = 1."""
    scores, vocabulary = class_tfidf([["apple apple banana"], ["banana", "cherry"]])
    got = {(c, t): scores[c, vocabulary.index(t)] for c in (0, 1)
           for t in ("apple", "banana", "cherry")}
    assert got[0, "apple"] == pytest.approx(2 / 3 * np.log(1 + 2.5 / 2))
    assert got[0, "banana"] == pytest.approx(1 / 3 * np.log(1 + 2.5 / 2))
    assert got[0, "cherry"] == 0.0
    assert got[1, "banana"] == pytest.approx(1 / 2 * np.log(1 + 2.5 / 2))
    assert got[1, "cherry"] == pytest.approx(1 / 2 * np.log(1 + 2.5 / 1))
