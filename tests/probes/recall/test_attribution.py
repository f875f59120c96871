"""The attribution table, row by row, and its precedence."""

from __future__ import annotations

import numpy as np
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
    # a quantizing rebuild moves nearly every stored vector; a vector alone in its list
    # decodes exactly, so "all moved" is too strict
    ({"index_config_changed": True, "docs_changed": 48, "fidelity_drop": True,
      "fidelity": 0.7, "live_drop": True, "exact_drop": True}, "index"),
    ({"index_config_changed": True, "docs_changed": 40, "live_drop": True,
      "exact_drop": True}, "content"),
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


def test_content_reasons_name_the_documents_first_with_a_count() -> None:
    missing = [f"doc{i:02d}" for i in range(12)]
    got = attribute(Evidence(**{**BASE, "docs_missing": 12, "docs_missing_ids": missing,
                                "docs_changed": 2, "docs_changed_ids": ["a#0", "b#3"]}))
    assert got.reasons == [
        "12 of 50 golden documents are missing from the index (deleted, or ingested under "
        "another id): doc00, doc01, doc02, doc03, doc04 and 7 more",
        "2 of 50 golden documents have a stored vector that differs from the baseline's "
        "(edited or re-ingested): a#0, b#3"]


def test_a_golden_set_change_lists_its_edits() -> None:
    diff = {"unchanged": 60, "edited": {"count": 1, "ids": ["q01"]},
            "rejudged": {"count": 0, "ids": []}, "added": {"count": 7, "ids": [
                "q90", "q91", "q92", "q93", "q94", "q95", "q96"]},
            "removed": {"count": 0, "ids": []}}
    got = attribute(Evidence(**{**BASE, "golden_changed": True, "golden_diff": diff}))
    assert got.verdict == "golden-set-changed"
    assert got.reasons == [
        "the golden set changed since the baseline's version: 1 edited (q01), 7 added (q90, "
        "q91, q92, q93, q94 and 2 more); the 60 unchanged queries did not regress"]


def test_the_canary_reason_names_the_run_or_the_inline_check() -> None:
    run = {"source": "run", "probe": "canary", "run_id": 12, "changed": True,
           "finished_at": "2025-01-01T00:00:00+00:00"}
    got = attribute(Evidence(**{**BASE, "canary_changed": True, "canary": run}))
    assert got.reasons[0].startswith("the canary probe 'canary' reports a changed pipeline "
                                     "(run 12, finished 2025-01-01T00:00:00+00:00)")
    inline = {"source": "inline", "probe": "canary", "changed": True, "cosine_min": 0.98761}
    got = attribute(Evidence(**{**BASE, "canary_changed": True, "canary": inline}))
    assert got.reasons[0].startswith("the canary texts of probe 'canary', embedded by this "
                                     "run, differ from the canary's reference (lowest cosine "
                                     "0.9876)")
    unavailable = {"source": "unavailable", "probe": "canary", "changed": None}
    assert attribute(Evidence(**{**BASE, "canary_changed": None,
                                 "canary": unavailable})).verdict == "healthy"


def test_the_default_floor_flags_a_fidelity_healthy_indexes_do_not_have() -> None:
    got = attribute(Evidence(**{**BASE, "baseline": False, "fidelity": 0.77}))
    assert got.verdict == "index"
    assert got.reasons[0].startswith("ANN-vs-exact recall is 0.770, below the floor 0.9 at "
                                     "k=10 (HNSW and IVF indexes with sane parameters reach")
    assert attribute(Evidence(**{**BASE, "baseline": False, "fidelity": 0.93})).verdict \
        == "healthy"


def test_a_fidelity_below_the_floor_on_a_subset_needs_its_interval_below_it() -> None:
    """Measured on 20 of 1,000 queries, 0.85 with an interval reaching 0.95 is not evidence
    against the 0.9 floor; the same interval wholly below it is, and says it was a subset."""
    subset = {**BASE, "baseline": False, "fidelity": 0.85, "fidelity_queries": 20,
              "fidelity_total": 1000}
    assert attribute(Evidence(**{**subset, "fidelity_lower": 0.7,
                                 "fidelity_upper": 0.95})).verdict == "healthy"
    out = attribute(Evidence(**{**subset, "fidelity_lower": 0.8, "fidelity_upper": 0.88}))
    assert out.verdict == "index"
    assert out.reasons[0].startswith("ANN-vs-exact recall is 0.850 (on 20 of 1000 queries, "
                                     "interval 0.800..0.880), below the floor 0.9")
    # every query measured: the bounds are the value, and the rule is the plain floor
    full = {**BASE, "baseline": False, "fidelity": 0.85, "fidelity_lower": 0.85,
            "fidelity_upper": 0.85, "fidelity_queries": 1000, "fidelity_total": 1000}
    assert attribute(Evidence(**full)).verdict == "index"


def test_a_fidelity_drop_between_different_subsets_is_judged_with_both_errors() -> None:
    from ragmon.probes.recall.evidence import unpaired_drop

    rng = np.random.default_rng(0)
    before = list(rng.choice([1.0, 0.9, 0.8], size=100, p=[0.8, 0.15, 0.05]))
    # the same distribution: no drop, whatever the subsets
    same = list(rng.choice([1.0, 0.9, 0.8], size=100, p=[0.8, 0.15, 0.05]))
    assert unpaired_drop(before, same, 1000, 1000, 0.05, 0.05)[1] is False
    # a real fall of about 0.3, seen on 100 of 1,000 queries each time
    worse = list(rng.choice([1.0, 0.5, 0.3], size=100, p=[0.3, 0.4, 0.3]))
    mean_before, dropped = unpaired_drop(before, worse, 1000, 1000, 0.05, 0.05)
    assert dropped and mean_before == pytest.approx(np.mean(before))
    # five queries 0.1 lower on average are within the noise of so small a subset
    small = [1.0, 0.6, 1.0, 0.7, 1.0]
    assert np.mean(before) - np.mean(small) > 0.05
    assert unpaired_drop(before, small, 1000, 1000, 0.05, 0.05)[1] is False


def test_an_unchanged_zero_vector_is_not_a_moved_document() -> None:
    """A zero vector has no direction: kept as it was it is not "changed" (vector_stats
    reports it as a zero vector); one that became zero, or moved, is."""
    from ragmon.probes.recall.evidence import changed_ids

    zero, unit = np.zeros(4, np.float32), np.eye(4, dtype=np.float32)
    before = {"kept-zero": zero, "became-zero": unit[0], "moved": unit[1], "same": unit[2]}
    now = {"kept-zero": zero.copy(), "became-zero": zero, "moved": unit[3],
           "same": unit[2].copy()}
    assert changed_ids(before, now, 0.99) == ["became-zero", "moved"]


def test_an_unchanged_non_finite_vector_is_not_a_moved_document() -> None:
    """A vector holding NaN or infinity has no cosine: kept bit for bit as it was (broken
    ingestion that stays broken, which vector_stats reports) it is not "changed"; one that
    became non-finite is."""
    from ragmon.probes.recall.evidence import changed_ids

    nan, inf = np.array([np.nan, 1, 0, 0], np.float32), np.array([np.inf, 1, 0, 0], np.float32)
    unit = np.eye(4, dtype=np.float32)
    before = {"kept-nan": nan, "kept-inf": inf, "became-nan": unit[0], "same": unit[2]}
    now = {"kept-nan": nan.copy(), "kept-inf": inf.copy(), "became-nan": nan.copy(),
           "same": unit[2].copy()}
    assert changed_ids(before, now, 0.99) == ["became-nan"]
