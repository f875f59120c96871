"""The attribution table, row by row, and its precedence."""

from __future__ import annotations

import pytest

from ragmon.probes.recall.attribution import VERDICTS, Evidence, attribute

BASE = {"baseline": True, "docs_total": 50, "docs_compared": 50, "queries_compared": 60,
        "fidelity": 0.99, "fidelity_baseline": 0.99}


@pytest.mark.parametrize(("changes", "verdict"), [
    ({}, "healthy"),
    ({"fidelity": 0.6, "fidelity_drop": True, "live_drop": True}, "index"),
    ({"fidelity": 0.3, "baseline": False}, "index"),
    ({"shortfall_ratio": 0.1}, "index"),
    ({"index_config_changed": True, "live_drop": True}, "index"),
    ({"index_config_changed": True, "docs_changed": 50, "fidelity_drop": True,
      "fidelity": 0.7, "live_drop": True, "exact_drop": True}, "index"),
    ({"query_vectors_changed": 60, "query_min_cosine": 0.8, "live_drop": True,
      "exact_drop": True}, "embedding"),
    ({"canary_changed": True}, "embedding"),
    ({"embedder_changed": True, "live_drop": True}, "embedding"),
    ({"docs_missing": 10, "live_drop": True}, "content"),
    ({"docs_missing": 1, "baseline": False}, "content"),
    ({"docs_changed": 10, "live_drop": True, "exact_drop": True}, "content"),
    ({"docs_changed": 10, "index_config_changed": True}, "content"),
    ({"live_drop": True, "exact_drop": True}, "inconclusive"),
    ({"golden_changed": True}, "golden-set-changed"),
    ({"golden_changed": True, "docs_missing": 3}, "content"),
    ({"golden_changed": True, "live_drop": True}, "inconclusive"),
    ({"query_vectors_changed": 5, "query_min_cosine": 0.9, "docs_missing": 5,
      "fidelity_drop": True, "fidelity": 0.5}, "embedding"),
])
def test_verdicts(changes: dict, verdict: str) -> None:
    got = attribute(Evidence(**{**BASE, **changes}))
    assert got.verdict == verdict and got.verdict in VERDICTS
    assert bool(got.reasons) == (verdict != "healthy")
    assert got.evidence["docs_total"] == 50


def test_reasons_say_what_moved() -> None:
    got = attribute(Evidence(**{**BASE, "fidelity": 0.41, "fidelity_drop": True,
                                "live_drop": True}))
    assert got.reasons == ["ANN-vs-exact recall fell from 0.990 to 0.410 (paired); exact "
                           "labelled recall held"]
    got = attribute(Evidence(**{**BASE, "docs_missing": 10, "live_drop": True}))
    assert got.reasons == ["10 of 50 golden documents are missing from the index (deleted, "
                           "or ingested under another id)"]


def test_a_second_cause_is_reported_beside_the_verdict() -> None:
    got = attribute(Evidence(**{**BASE, "docs_missing": 15, "fidelity": 0.63,
                                "fidelity_drop": True, "live_drop": True, "exact_drop": True}))
    assert got.verdict == "content" and list(got.also) == ["index"]
    assert got.also["index"][0].startswith("ANN-vs-exact recall fell from 0.990 to 0.630")
    assert attribute(Evidence(**BASE)).also == {}


def test_failed_queries_are_named_when_they_explain_a_drop() -> None:
    got = attribute(Evidence(**{**BASE, "live_drop": True, "queries_failed": 12}))
    assert got.verdict == "inconclusive"
    assert got.reasons[1] == "12 queries failed or timed out and score 0; their rows hold the errors"
