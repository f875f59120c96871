"""Verdicts that stay true over a probe's life: golden set edits (with and without a pin),
a canary result that is old or measured another pipeline, and an index that is already
degraded when ragmon first sees it. All on the real FAISS set-up of conftest.py."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import yaml

from ragmon.probes.recall.history import pin_baseline
from tests.probes.recall.conftest import PROBE, Env


def rows(env: Env) -> list[dict[str, Any]]:
    return [json.loads(line) for line in env.golden.read_text().splitlines()]


def write_rows(env: Env, data: list[dict[str, Any]]) -> None:
    env.golden.write_text("\n".join(json.dumps(r) for r in data) + "\n")


def healthy(env: Env) -> tuple[Any, int]:
    result, run_id = env.run()
    assert result.status == "ok", result.error
    assert result.details["verdict"] == "healthy", result.details["reasons"]
    assert run_id is not None
    return result, run_id


def reword_first_query(env: Env) -> str:
    data = rows(env)
    data[0]["query"] = "What is the call that serialises a dictionary as JSON text?"
    write_rows(env, data)
    return str(data[0]["id"])


def test_a_reworded_question_is_a_golden_set_change_and_the_baseline_recovers(env: Env) -> None:
    healthy(env)
    qid = reword_first_query(env)
    result, run_id = env.run()
    d = result.details
    assert d["verdict"] == "golden-set-changed", d["reasons"]
    diff = d["evidence"]["golden_diff"]
    assert diff["edited"] == {"count": 1, "ids": [qid]}
    assert diff["added"]["count"] == diff["removed"]["count"] == diff["rejudged"]["count"] == 0
    assert d["evidence"]["query_vectors_changed"] == 0
    assert d["evidence"]["queries_compared"] == 64
    assert qid not in {r["query_id"] for r in d["regressed"]}
    live = next(c for c in d["comparisons"] if c["mode"] == "live" and c["k"] == 10)
    assert live["paired_queries"] == 64
    assert f"1 edited ({qid})" in d["reasons"][0]
    # the run on the new version is its baseline from now on
    again, _ = env.run()
    assert again.details["verdict"] == "healthy", again.details["reasons"]
    assert again.details["baseline"]["run_id"] == run_id
    assert again.details["evidence"]["golden_diff"] is None


def test_an_add_only_edit_after_a_pin_is_reported_once(env: Env) -> None:
    healthy(env)
    _, second = healthy(env)
    pin_baseline(env.store, second, "chosen by hand")
    data = rows(env)
    data.append({"id": "q99", "query": "Compress bytes with zlib",
                 "relevant": ["zlib.compress#0"]})
    write_rows(env, data)
    result, run_id = env.run()
    d = result.details
    assert d["verdict"] == "golden-set-changed", d["reasons"]
    assert d["baseline"]["run_id"] == second and d["baseline"]["how"] == "pinned"
    assert d["evidence"]["golden_diff"]["added"] == {"count": 1, "ids": ["q99"]}
    again, _ = env.run()
    assert again.details["verdict"] == "healthy", again.details["reasons"]
    assert again.details["baseline"]["run_id"] == run_id
    assert again.details["baseline"]["how"] == "first healthy run after the pin"


def test_a_reworded_question_after_a_pin_does_not_freeze_an_embedding_verdict(env: Env) -> None:
    _, first = healthy(env)
    pin_baseline(env.store, first)
    reword_first_query(env)
    assert env.run()[0].details["verdict"] == "golden-set-changed"
    assert env.run()[0].details["verdict"] == "healthy"


def nudged_embedder(env: Env) -> Any:
    """The same model directory and settings, its loaded weights nudged in memory: a
    pipeline change the embedder fingerprint cannot see, as a library upgrade that changes
    the numerics would be."""
    import torch

    from ragmon.monitor.embedders.sentence_transformers import (
        SentenceTransformerEmbedder,
        SentenceTransformersConfig,
    )

    cfg = SentenceTransformersConfig(kind="sentence-transformers", model="all-MiniLM-L6-v2")
    embedder = SentenceTransformerEmbedder("minilm", cfg)
    model = copy.deepcopy(env.minilm._load())
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.01)
    embedder._model = model
    return embedder


def schedule_canary(env: Env, **schedule: str) -> None:
    """Give the set-up's canary probe its own schedule (its interval decides freshness)."""
    write = env.write_config

    def write_with_schedule() -> Any:
        path = write()
        config = yaml.safe_load(path.read_text())
        config["probes"]["canary"].update(schedule)
        path.write_text(yaml.safe_dump(config))
        return path

    env.write_config = write_with_schedule  # type: ignore[method-assign]
    env.reload()


def test_a_fixed_pipeline_is_not_blamed_on_the_canary_run_of_the_broken_one(env: Env) -> None:
    assert env.run("canary")[0].details["reference"] == "captured"
    healthy(env)
    env.embedder["max_seq_length"] = 6
    env.model = env.truncating_embedder(6)
    env.reload()
    broken, canary_run = env.run("canary")
    assert broken.details["verdict"] == "changed"
    assert env.run()[0].details["verdict"] == "embedding"
    env.embedder.pop("max_seq_length")  # fixed; the canary has not run since
    env.model = env.minilm
    env.reload()
    result, _ = env.run()
    d = result.details
    assert d["verdict"] == "healthy", d["reasons"]
    canary = d["causes"]["canary"]
    assert canary["source"] == "inline" and canary["changed"] is False
    assert canary["skipped_run"]["run_id"] == canary_run
    assert "another embedder fingerprint" in canary["note"]


def test_a_stale_canary_result_is_replaced_by_an_inline_check(env: Env) -> None:
    schedule_canary(env, every="1s", jitter="0s")
    assert env.run("canary")[0].details["reference"] == "captured"
    healthy(env)
    env.model = nudged_embedder(env)
    env.reload()
    nudged, canary_run = env.run("canary")
    assert nudged.details["verdict"] == "changed", nudged.details
    assert nudged.embedder_fingerprint == env.minilm.fingerprint_id()
    env.model = env.minilm  # back to the pipeline the reference was taken with
    env.reload()
    time.sleep(2.2)  # two canary intervals pass without a canary run
    result, _ = env.run()
    d = result.details
    assert d["verdict"] == "healthy", d["reasons"]
    canary = d["causes"]["canary"]
    assert canary["source"] == "inline" and canary["changed"] is False
    assert canary["skipped_run"]["run_id"] == canary_run
    assert "older than two intervals" in canary["note"]


def test_a_fresh_canary_run_is_used_and_named(env: Env) -> None:
    env.run("canary")
    healthy(env)
    canary_result, canary_run = env.run("canary")
    result, _ = env.run()
    canary = result.details["causes"]["canary"]
    assert canary["source"] == "run" and canary["run_id"] == canary_run
    assert canary["probe"] == "canary" and canary["changed"] is False
    assert canary["finished_at"]


def test_a_degraded_index_on_a_fresh_store_does_not_become_the_baseline(env: Env) -> None:
    env.target["ef_search"] = 3
    env.reload()
    result, _ = env.run()
    d = result.details
    fidelity = d["evidence"]["fidelity"]
    assert 0.5 < fidelity < 0.9, fidelity  # the old floor (0.5) called this healthy
    assert d["verdict"] == "index", d["reasons"]
    assert d["reasons"][0].startswith(f"ANN-vs-exact recall is {fidelity:.3f}, below the floor 0.9")
    text = env.runner.probes[PROBE].render(result)
    assert "no baseline captured: this run's verdict is index" in text
    assert env.run()[0].details["baseline"] is None
    env.target.pop("ef_search")
    env.reload()
    result, run_id = healthy(env)
    text = env.runner.probes[PROBE].render(result)
    fid = result.details["evidence"]["fidelity"]
    assert (f"baseline captured by this run; index fidelity {fid:.3f} at k=10 (typical for a "
            "healthy index: >= 0.9)") in text
    assert env.run()[0].details["baseline"]["run_id"] == run_id


def test_golden_diff_tells_edits_from_rejudgements() -> None:
    from ragmon.probes.recall.golden_diff import diff_golden

    before = [{"id": "a", "query": "x", "relevant": {"d1": 1}},
              {"id": "b", "query": "y", "relevant": {"d2": 1}},
              {"id": "c", "query": "z", "relevant": {"d3": 1}, "filter": {"t": 1}},
              {"id": "d", "vector": [0.1, 0.2], "relevant": {"d4": 1}},
              {"id": "gone", "query": "w", "relevant": {"d5": 1}}]
    after = [{"id": "a", "query": "x", "relevant": {"d1": 1.0}, "tags": ["new tag"]},
             {"id": "b", "query": "y", "relevant": {"d2": 2}},
             {"id": "c", "query": "z", "relevant": {"d3": 1}, "filter": {"t": 2}},
             {"id": "d", "vector": [0.1, 0.25], "relevant": {"d4": 1}},
             {"id": "new", "query": "v", "relevant": {"d6": 1}}]
    diff = diff_golden(before, after)
    assert (diff.unchanged, diff.rejudged, diff.edited, diff.added, diff.removed) == (
        ["a"], ["b"], ["c", "d"], ["new"], ["gone"])
    assert diff.same_query == {"a", "b"}


def test_canary_evidence_is_unavailable_when_nothing_speaks_for_the_pipeline(env: Env) -> None:
    env.run("canary")  # a reference of the default canary texts
    healthy(env)
    schedule_canary(env, every="1s", jitter="0s", texts=["edited canary text"])
    time.sleep(2.2)
    result, _ = env.run()
    canary = result.details["causes"]["canary"]
    assert canary["source"] == "unavailable" and canary["changed"] is None
    assert "older than two intervals" in canary["note"]
    assert canary["note"].endswith("no canary result for the current pipeline, and no canary "
                                   "reference this run can check against")
    assert result.details["verdict"] == "healthy"
