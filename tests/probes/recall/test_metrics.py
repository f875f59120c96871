"""Labelled metrics against an independent oracle: pytrec_eval, which is trec_eval's own C
code, over random graded judgments and runs with ties, empty rankings and queries whose
relevant documents are never retrieved. (ranx is not used here: it orders tied documents
arbitrarily, and its JIT start-up alone costs ~20 s per test session.)"""

from __future__ import annotations

import math

import pytest
import pytrec_eval
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ragmon.probes.recall.config import DocumentsConfig
from ragmon.probes.recall.documents import DocumentMap, collapse
from ragmon.probes.recall.metrics import (
    break_ties,
    mean_metrics,
    query_metrics,
    stored_batch,
    zero_metrics,
)

KS = [1, 3, 5, 10]
DOCS = [f"d{i}" for i in range(15)]


@st.composite
def qrels_and_run(draw: st.DrawFn, ties: bool) -> tuple[dict[str, int], dict[str, float]]:
    judged = draw(st.lists(st.sampled_from(DOCS), min_size=1, max_size=8, unique=True))
    grades = {d: draw(st.integers(min_value=0, max_value=3)) for d in judged}
    if not any(g > 0 for g in grades.values()):
        grades[judged[0]] = draw(st.integers(min_value=1, max_value=3))
    retrieved = draw(st.lists(st.sampled_from(DOCS), min_size=0, max_size=12, unique=True))
    if ties:
        scores = [float(draw(st.integers(min_value=0, max_value=3))) for _ in retrieved]
    else:
        scores = [float(s) for s in draw(st.permutations(range(len(retrieved))))]
    return grades, dict(zip(retrieved, scores, strict=True))


def engine_order(run: dict[str, float]) -> tuple[list[str], list[float]]:
    """What an engine hands back: best first, tied documents in arbitrary (here: id) order."""
    items = sorted(run.items(), key=lambda x: (-x[1], x[0]))
    return [d for d, _ in items], [s for _, s in items]


def ours(grades: dict[str, int], run: dict[str, float], gain: str = "linear"):  # type: ignore[no-untyped-def]
    ids, scores = engine_order(run)
    return query_metrics(break_ties(ids, scores), grades, KS, gain)  # type: ignore[arg-type]


MEASURES = {"recall." + ",".join(map(str, KS)), "P." + ",".join(map(str, KS)),
            "success." + ",".join(map(str, KS)), "ndcg_cut." + ",".join(map(str, KS)),
            "recip_rank"}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(qrels_and_run(ties=True))
def test_every_metric_matches_trec_eval_including_ties(case) -> None:  # type: ignore[no-untyped-def]
    grades, run = case
    evaluator = pytrec_eval.RelevanceEvaluator({"q": grades}, MEASURES)
    # trec_eval leaves out a query with an empty ranking; ragmon scores it 0 (-c semantics)
    oracle = evaluator.evaluate({"q": run}).get("q", {}) if run else {}
    got = ours(grades, run)
    for k in KS:
        assert got.recall[k] == pytest.approx(oracle.get(f"recall_{k}", 0.0), abs=1e-12)
        assert got.precision[k] == pytest.approx(oracle.get(f"P_{k}", 0.0), abs=1e-12)
        assert got.hit[k] == pytest.approx(oracle.get(f"success_{k}", 0.0), abs=1e-12)
        assert got.ndcg[k] == pytest.approx(oracle.get(f"ndcg_cut_{k}", 0.0), abs=1e-12)
    assert got.rr == pytest.approx(oracle.get("recip_rank", 0.0), abs=1e-12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(qrels_and_run(ties=True), min_size=1, max_size=8))
def test_exponential_gain_and_means_match_trec_eval(cases) -> None:  # type: ignore[no-untyped-def]
    # trec_eval's gain is the judged value itself, so judging 2**g - 1 gives exponential gain
    expo_qrels = {f"q{i}": {d: 2**g - 1 for d, g in grades.items()}
                  for i, (grades, _) in enumerate(cases)}
    evaluator = pytrec_eval.RelevanceEvaluator(expo_qrels, MEASURES)
    oracle = evaluator.evaluate({f"q{i}": run for i, (_, run) in enumerate(cases) if run})
    got = [ours(grades, run, "exponential") for grades, run in cases]
    means = mean_metrics(got, KS)
    n = len(cases)
    for k in KS:
        expected = sum(oracle.get(f"q{i}", {}).get(f"ndcg_cut_{k}", 0.0) for i in range(n)) / n
        assert means["ndcg"][k] == pytest.approx(expected, abs=1e-12)
        expected = sum(oracle.get(f"q{i}", {}).get(f"recall_{k}", 0.0) for i in range(n)) / n
        assert means["recall"][k] == pytest.approx(expected, abs=1e-12)
    expected = sum(oracle.get(f"q{i}", {}).get("recip_rank", 0.0) for i in range(n)) / n
    assert means["mrr"][0] == pytest.approx(expected, abs=1e-12)


@st.composite
def chunk_qrels_and_run(draw: st.DrawFn) -> tuple[dict[str, int], dict[str, float]]:
    """Document judgments and a run of chunks ``d<i>#<n>``, several per document, with ties."""
    grades, _ = draw(qrels_and_run(ties=True))
    chunks = [f"{d}#{n}" for d in DOCS for n in range(3)]
    retrieved = draw(st.lists(st.sampled_from(chunks), min_size=0, max_size=20, unique=True))
    scores = [float(draw(st.integers(min_value=0, max_value=4))) for _ in retrieved]
    return grades, dict(zip(retrieved, scores, strict=True))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunk_qrels_and_run())
def test_collapsed_chunk_runs_match_trec_eval_on_the_document_run(case) -> None:  # type: ignore[no-untyped-def]
    grades, chunk_run = case
    # the oracle's own collapse: a document's score is its best chunk's (MaxP)
    doc_run: dict[str, float] = {}
    for chunk, score in chunk_run.items():
        doc = chunk.split("#")[0]
        doc_run[doc] = max(doc_run.get(doc, score), score)
    evaluator = pytrec_eval.RelevanceEvaluator({"q": grades}, MEASURES)
    oracle = evaluator.evaluate({"q": doc_run}).get("q", {}) if doc_run else {}
    ids, scores = engine_order(chunk_run)
    of = DocumentMap(DocumentsConfig(separator="#")).of
    got = query_metrics(collapse(ids, scores, of), grades, KS)
    for k in KS:
        assert got.recall[k] == pytest.approx(oracle.get(f"recall_{k}", 0.0), abs=1e-12)
        assert got.precision[k] == pytest.approx(oracle.get(f"P_{k}", 0.0), abs=1e-12)
        assert got.hit[k] == pytest.approx(oracle.get(f"success_{k}", 0.0), abs=1e-12)
        assert got.ndcg[k] == pytest.approx(oracle.get(f"ndcg_cut_{k}", 0.0), abs=1e-12)
    assert got.rr == pytest.approx(oracle.get("recip_rank", 0.0), abs=1e-12)


def test_ties_are_broken_by_id_descending_like_trec_eval() -> None:
    assert break_ties(["a", "c", "b", "d"], [2.0, 1.0, 1.0, 0.5]) == ["a", "c", "b", "d"]
    assert break_ties(["a", "b", "c", "d"], [2.0, 1.0, 1.0, 0.5]) == ["a", "c", "b", "d"]
    # distances (smaller first) tie the same way: the rule only looks at equal neighbours
    assert break_ties(["x1", "x2", "x0"], [0.1, 0.1, 0.3]) == ["x2", "x1", "x0"]
    assert break_ties(["a", "a", "b"], None) == ["a", "b"]


def test_idcg_counts_judged_documents_never_retrieved() -> None:
    got = query_metrics(["a"], {"a": 1, "b": 3}, [1, 2])
    assert got.ndcg[2] == pytest.approx(1.0 / (3 + 1 / math.log2(3)))
    assert got.recall[2] == 0.5 and got.precision[2] == 0.5


def test_failed_query_scores_zero_and_stays_in_the_mean() -> None:
    good = query_metrics(["a"], {"a": 1}, [1])
    mean = mean_metrics([good, zero_metrics([1])], [1])
    assert mean["recall"][1] == 0.5 and mean["mrr"][0] == 0.5


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(qrels_and_run(ties=True), min_size=1, max_size=12),
       st.sampled_from(["linear", "exponential"]))
def test_the_batch_the_probe_stores_equals_one_list_at_a_time_and_trec_eval(
    cases, gain: str
) -> None:  # type: ignore[no-untyped-def]
    """stored_batch (what a run stores, all sides at once) gives every list exactly what
    query_metrics gives it, and trec_eval's values; with an empty list and a query without
    a positive judgment and one whose exponential gain is 0.0 though it is relevant."""
    cases = [*cases, ({"d1": 2}, {}), ({"d1": 0, "d2": 0}, {"d1": 1.0})]
    tiny = ({"d1": 1e-17, "d2": 1}, {"d0": 2.0, "d1": 1.0})  # 2**1e-17 - 1 == 0.0
    ranked = [break_ties(*engine_order(run)) for _, run in (*cases, tiny)]
    grades = [grades for grades, _ in (*cases, tiny)]
    keys = tuple(str(k) for k in KS)
    got = stored_batch(ranked, grades, tuple(KS), keys, gain)  # type: ignore[arg-type]
    assert got == [{"ids": r, **query_metrics(r, g, KS, gain).as_dict()}  # type: ignore[arg-type]
                   for r, g in zip(ranked, grades, strict=True)]
    assert got[-1]["relevant_ranks"] == {"d1": 2}
    got = got[:-1]  # trec_eval takes integer grades only
    judged = [{d: (2**g - 1 if gain == "exponential" else g) for d, g in one.items()}
              for one, _ in cases]
    evaluator = pytrec_eval.RelevanceEvaluator(
        {f"q{i}": one for i, one in enumerate(judged) if any(g > 0 for g in one.values())},
        MEASURES)
    oracle = evaluator.evaluate({f"q{i}": run for i, (_, run) in enumerate(cases) if run})
    for i, side in enumerate(got):
        expected = oracle.get(f"q{i}", {})
        for k in KS:
            assert side["ndcg"][str(k)] == pytest.approx(expected.get(f"ndcg_cut_{k}", 0.0),
                                                         abs=1e-12)
            assert side["recall"][str(k)] == pytest.approx(expected.get(f"recall_{k}", 0.0),
                                                           abs=1e-12)
            assert side["precision"][str(k)] == pytest.approx(expected.get(f"P_{k}", 0.0),
                                                              abs=1e-12)
        assert side["rr"] == pytest.approx(expected.get("recip_rank", 0.0), abs=1e-12)
