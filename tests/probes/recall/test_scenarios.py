"""End-to-end: the recall probe on a FAISS index of real MiniLM embeddings of the stdlib
corpus, with 65 hand-written golden questions. Each degradation gets the right verdict, an
unchanged index stays healthy, and bad inputs and faults give clear, stored results."""

from __future__ import annotations

import json
import shutil
import time
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from ragmon.monitor.metrics import StoreCollector
from tests.probes.recall.conftest import PROBE, Env, write_index


def values(result: Any) -> dict[tuple[str, str], float]:
    return {(n, ",".join(f"{k}={v}" for k, v in sorted(labels.items()))): v
            for n, labels, v in result.values}


def baseline(env: Env) -> Any:
    result, run_id = env.run()
    assert result.status == "ok", result.error
    assert result.details["verdict"] == "healthy", result.details["reasons"]
    return result


def test_no_change_stays_healthy_in_20_runs(env: Env) -> None:
    # Nothing changes between these runs and they are deterministic (same queries, same
    # embedder, same index file), so every one must be healthy, with the same recall.
    runs = [env.run()[0] for _ in range(20)]
    assert [r.details["verdict"] for r in runs] == ["healthy"] * 20, \
        [(r.details["verdict"], r.details["reasons"]) for r in runs]
    recalls = [{key: v for key, v in values(r).items() if key[0] == "recall_ratio"}
               for r in runs]
    assert recalls[0] and all(r == recalls[0] for r in recalls), recalls
    result, run_id = env.run()
    v = values(result)
    assert v[("recall_verdict", "verdict=healthy")] == 1.0
    assert v[("recall_verdict", "verdict=index")] == 0.0
    assert v[("recall_drop_significant", "k=10")] == 0.0
    assert v[("recall_delta_ratio", "k=10")] == 0.0
    assert 0.6 < v[("recall_ratio", "k=10,mode=live")] <= v[("recall_ratio", "k=20,mode=live")]
    assert v[("index_fidelity_ratio", "k=10")] > 0.95
    assert v[("golden_docs_missing_ratio", "")] == 0.0
    assert result.details["baseline"]["how"] == "first healthy run"
    # one row per query, with the ranks the comparison needs
    rows = env.store.query_results(run_id)
    assert len(rows) == 65 and all(r.status == "ok" for r in rows)
    assert set(rows[0].data) >= {"live", "exact", "fidelity", "judgments"}


def test_lowered_ef_search_is_an_index_problem(any_store_env: Env) -> None:
    env = any_store_env
    baseline(env)
    env.target["ef_search"] = 1
    env.reload()
    result, _ = env.run()
    d = result.details
    assert d["verdict"] == "index", d["reasons"]
    assert d["evidence"]["fidelity_drop"] and not d["evidence"]["exact_drop"]
    v = values(result)
    assert v[("index_fidelity_ratio", "k=10")] < 0.8
    assert v[("recall_verdict", "verdict=index")] == 1.0
    assert v[("recall_drop_significant", "k=10")] == 1.0
    assert v[("recall_delta_ratio", "k=10")] < -0.05
    live = next(c for c in d["comparisons"] if c["mode"] == "live" and c["k"] == 10)
    assert live["mcnemar"]["lost_hits"] > live["mcnemar"]["gained_hits"]
    assert live["recall_delta_ci"][1] < 0 and live["topk_overlap"] < 0.9
    assert d["regressed"] and d["regressed"][0]["recall_after"] < d["regressed"][0]["recall_before"]
    text = env.runner.probes[PROBE].render(result)
    assert "VERDICT: index" in text and "SIGNIFICANT DROP" in text
    assert "top regressed queries" in text


def test_rebuild_as_ivf_pq_with_nprobe_1_is_an_index_problem(env: Env) -> None:
    baseline(env)
    write_index(env.index, env.vectors, env.ids, kind="ivfpq")
    env.target["nprobe"] = 1
    env.reload()
    result, _ = env.run()
    d = result.details
    assert d["verdict"] == "index", d["reasons"]
    assert d["evidence"]["index_config_changed"] and d["evidence"]["fidelity_drop"]


def test_changed_query_pipeline_is_an_embedding_problem(env: Env) -> None:
    assert env.run("canary")[0].details["reference"] == "captured"
    baseline(env)
    env.embedder["max_seq_length"] = 6  # truncation changed; the index keeps the old vectors
    env.model = env.truncating_embedder(6)
    env.reload()
    canary, _ = env.run("canary")
    assert canary.details["verdict"] == "changed"
    result, _ = env.run()
    d = result.details
    assert d["verdict"] == "embedding", d["reasons"]
    ev = d["evidence"]
    assert ev["query_vectors_changed"] > 30 and ev["canary_changed"] and ev["embedder_changed"]
    assert ev["docs_changed"] == 0 and ev["docs_missing"] == 0
    assert d["causes"]["canary"]["probe"] == "canary"


def golden_sample(env: Env, share: float) -> list[str]:
    docs = env.golden_doc_ids()
    rng = np.random.default_rng(7)
    return sorted(rng.choice(docs, size=round(share * len(docs)), replace=False).tolist())


def test_deleted_golden_documents_are_a_content_problem(env: Env) -> None:
    baseline(env)
    gone = set(golden_sample(env, 0.2))
    keep = [i for i, d in enumerate(env.ids) if d not in gone]
    write_index(env.index, env.vectors[keep], [env.ids[i] for i in keep])
    result, _ = env.run()
    d = result.details
    assert d["verdict"] == "content", d["reasons"]
    assert set(d["causes"]["docs_missing"]) == gone
    total = len(env.golden_doc_ids())
    first = sorted(gone)[:5]
    assert d["reasons"][0] == (
        f"{len(gone)} of {total} golden documents are missing from the index (deleted, or "
        f"ingested under another id): {', '.join(first)} and {len(gone) - 5} more")
    assert d["evidence"]["docs_missing_ids"] == sorted(gone)[:20]
    assert values(result)[("golden_docs_missing_ratio", "")] == len(gone) / total
    assert d["evidence"]["live_drop"]


def test_regressed_query_lines_fit_the_terminal_and_the_details_keep_them_whole(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    baseline(env)
    env.target["ef_search"] = 1
    env.reload()
    result, run_id = env.run()
    texts = {r["id"]: r["query"] for r in map(json.loads, env.golden.read_text().splitlines())}
    stored = env.store.run(run_id).details["regressed"]
    assert stored and all(r["query"] == texts[r["query_id"]] for r in stored)
    cut = {}
    for width in (72, 200):
        monkeypatch.setenv("COLUMNS", str(width))
        text = env.runner.probes[PROBE].render(result)
        lines = text.split("top regressed queries (recall@10):\n")[1].splitlines()
        assert len(lines) == min(10, len(stored))
        assert all(len(line) <= width for line in lines), [len(line) for line in lines]
        for line, r in zip(lines, stored, strict=False):
            assert line.startswith(f'    {r["query_id"]} "{r["query"][:20]}')
        cut[width] = sum(line.endswith("...") for line in lines)
    assert cut[72] > 0 and cut[200] < cut[72]


def test_reembedded_edited_golden_documents_are_a_content_problem(env: Env) -> None:
    baseline(env)
    edited = golden_sample(env, 0.2)
    position = {d: i for i, d in enumerate(env.ids)}
    vectors = env.vectors.copy()
    texts = [f"{d}: This page moved. See the release notes of the next version for details."
             for d in edited]
    vectors[[position[d] for d in edited]] = env.minilm.encode(texts)
    write_index(env.index, vectors, env.ids)
    result, _ = env.run()
    d = result.details
    assert d["verdict"] == "content", d["reasons"]
    assert d["evidence"]["docs_changed"] == len(edited) and d["evidence"]["docs_missing"] == 0
    assert d["evidence"]["docs_changed_ids"] == sorted(edited)[:20]
    assert d["reasons"][0].endswith(f": {', '.join(sorted(edited)[:5])} and {len(edited) - 5} more")
    v = values(result)
    assert v[("golden_docs_changed_ratio", "")] == len(edited) / len(env.golden_doc_ids())


def test_edited_golden_set_is_not_a_regression(env: Env) -> None:
    first = baseline(env)
    rows = [json.loads(line) for line in env.golden.read_text().splitlines()]
    rows[0]["relevant"] = {"json.dumps#0": 1}  # a changed judgment
    rows.append({"id": "q99", "query": "Compress bytes with zlib", "relevant": ["zlib.compress#0"]})
    env.golden.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result, _ = env.run()
    assert result.golden_version != first.golden_version
    assert result.details["verdict"] == "golden-set-changed", result.details["reasons"]
    live = next(c for c in result.details["comparisons"] if c["k"] == 10)
    assert live["paired_queries"] == 64  # the edited and the new query are not paired
    again, _ = env.run()
    assert again.details["verdict"] == "healthy"
    assert again.details["baseline"]["golden_version"] == result.golden_version


def test_target_down_is_a_failed_run_and_the_next_run_proceeds(env: Env) -> None:
    baseline(env)
    shutil.move(env.index, env.tmp / "away.faiss")
    result, run_id = env.run()
    assert result.status == "failed" and run_id is not None
    assert "docs.faiss" in result.error and "does not exist" in result.error
    registry = CollectorRegistry()
    registry.register(StoreCollector(env.store, env.context.config, env.context.plugins.metric_specs()))
    labels = {"probe": PROBE, "kind": "recall", "target": "docs"}
    assert registry.get_sample_value("ragmon_probe_success", labels) == 0.0
    shutil.move(env.tmp / "away.faiss", env.index)
    result, _ = env.run()
    assert result.status == "ok" and result.details["verdict"] == "healthy"
    assert registry.get_sample_value("ragmon_probe_success", labels) == 1.0


def test_corrupted_golden_set_fails_clearly_unless_last_good_is_allowed(env: Env) -> None:
    good = baseline(env)
    lines = env.golden.read_text().splitlines()
    lines[3] = lines[3][:20]
    env.golden.write_text("\n".join(lines))
    result, _ = env.run()
    assert result.status == "failed"
    assert result.error.startswith(f"{env.golden}:4: invalid JSON")
    env.golden_set["keep_last_good"] = True
    env.reload()
    result, _ = env.run()
    assert result.status == "ok" and result.golden_version == good.golden_version
    assert "using the last good version" in result.details["golden"]["note"]
    assert result.details["verdict"] == "healthy"
    env.golden.unlink()
    result, _ = env.run()
    assert result.status == "ok" and "file not found" in result.details["golden"]["note"]


def test_golden_ids_that_cannot_be_index_keys_fail_at_the_first_run(env: Env) -> None:
    write_index(env.index, env.vectors, env.ids, int_ids=True)
    env.target.pop("ids_path")
    env.reload()
    result, _ = env.run()
    assert result.status == "failed"
    assert "golden set 'stdlib' has string document ids" in result.error
    assert "target 'docs' keys its documents by int" in result.error


def test_exported_metrics_pass_promtool(env: Env, tmp_path: Any, promtool: str) -> None:
    import subprocess

    baseline(env)
    env.run()
    registry = CollectorRegistry()
    registry.register(StoreCollector(env.store, env.context.config, env.context.plugins.metric_specs()))
    text = generate_latest(registry).decode()
    for name in ("recall_ratio", "precision_ratio", "hit_rate_ratio", "mrr_ratio", "ndcg_ratio",
                 "index_fidelity_ratio", "recall_drop_significant", "recall_delta_ratio",
                 "recall_verdict", "golden_docs_missing_ratio", "search_latency_seconds",
                 "index_fidelity_lower_ratio", "index_fidelity_upper_ratio"):
        assert f"ragmon_{name}{{" in text, name
    assert "ragmon_ground_truth_queries{" in text
    assert "# TYPE ragmon_ground_truth_skipped_total counter" in text
    assert ('ragmon_ground_truth_skipped_total{kind="recall",probe="docs-recall",'
            'reason="budget",target="docs"} 0.0') in text
    assert ('ragmon_recall_ratio{k="10",kind="recall",mode="exact",probe="docs-recall",'
            'target="docs"}') in text
    check = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                           capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_refused_query_scores_zero_and_is_never_dropped(env: Env) -> None:
    rows = [json.loads(line) for line in env.golden.read_text().splitlines()]
    rows.append({"id": "q-filtered", "query": "Serialize an object to JSON",
                 "relevant": ["json.dumps#0"], "filter": {"topic": "json"}})
    env.golden.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result, run_id = env.run()
    assert result.status == "ok"
    failed = {r.query_id: r for r in env.store.query_results(run_id) if r.status != "ok"}
    assert list(failed) == ["q-filtered"]
    assert "faiss targets do not support filters" in failed["q-filtered"].data["error"]
    assert failed["q-filtered"].data["live"]["recall"]["10"] == 0.0
    v = values(result)
    assert v[("golden_queries", "")] == 66
    assert v[("golden_queries_failed_ratio", "")] == pytest.approx(1 / 66)
    ok = [r for r in env.store.query_results(run_id) if r.status == "ok"]
    mean_ok = sum(r.data["live"]["recall"]["10"] for r in ok) / 66
    assert v[("recall_ratio", "k=10,mode=live")] == pytest.approx(mean_ok)


def test_queries_past_the_time_budget_are_marked_timeout(env: Env) -> None:
    import time

    from ragmon.monitor.probe import Deadline
    from ragmon.probes.recall._search import search_all
    from ragmon.probes.recall.golden import load_golden_set

    golden = load_golden_set("g", env.context.config.golden_sets["stdlib"])
    vectors = env.minilm.encode([q.text for q in golden.queries])
    deadline = Deadline(10.0)
    deadline.expires = time.monotonic()  # spent
    out, _ = search_all(env.context.target("docs"), golden.queries, vectors, 10, 16, deadline)
    assert set(out.status) == {"timeout"} and out.live_ids[0] == []


def test_query_dimension_differing_from_the_index_is_a_specific_error(env: Env) -> None:
    write_index(env.index, np.ascontiguousarray(env.vectors[:, :128]), env.ids)
    result, _ = env.run()
    assert result.status == "failed"
    assert result.error == (
        "target 'docs': query vectors have dimension 384 but the index has dimension 128; "
        "the embedder does not match the one that built the index")


def test_target_without_exact_search_reports_fidelity_as_not_measurable(env: Env) -> None:
    from ragmon.monitor.targets.faiss import FaissTarget

    class NoExactFaiss(FaissTarget):
        """The real FAISS adapter with its exact mode switched off, as an engine without one."""

        supports_exact = False

        def exact_search(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("exact search must not be called")

    config = env.context.config.targets["docs"]
    env.context._targets["docs"] = NoExactFaiss("docs", config)
    baseline(env)
    result, _ = env.run()
    v = values(result)
    assert not any(name == "index_fidelity_ratio" for name, _ in v)
    assert not any("mode=exact" in labels for _, labels in v)
    note = "not measurable: the target has no exact search"
    assert result.details["fidelity"] == {
        "measurable": False, "note": note, "notes": [note], "ground_truth": None}
    text = env.runner.probes[PROBE].render(result)
    assert "fidelity: not measurable" in text and result.details["verdict"] == "healthy"


def test_two_things_breaking_at_once_are_both_reported(env: Env) -> None:
    baseline(env)
    gone = set(golden_sample(env, 0.2))
    keep = [i for i, d in enumerate(env.ids) if d not in gone]
    write_index(env.index, env.vectors[keep], [env.ids[i] for i in keep])
    env.target["ef_search"] = 1
    env.reload()
    result, _ = env.run()
    assert result.details["verdict"] == "content"
    assert list(result.details["also"]) == ["index"]
    text = env.runner.probes[PROBE].render(result)
    assert "VERDICT: content" in text and "also index:" in text


def test_text_input_target_without_embedder_or_fetch(env: Env) -> None:
    from ragmon.monitor.targets.faiss import FaissTarget

    minilm = env.minilm

    class AppSearch(FaissTarget):
        """The real FAISS adapter behind an application that embeds query texts itself and
        cannot hand back stored vectors (like an HTTP search endpoint)."""

        query_input = "text"
        supports_fetch = False

        def search(self, vectors: Any, k: int, filter: Any = None, *, texts: Any = None) -> Any:
            return super().search(minilm.encode(list(texts)), k, filter)

        def exact_search(self, vectors: Any, k: int, filter: Any = None, *,
                         texts: Any = None, budget: float | None = None) -> Any:
            return super().exact_search(minilm.encode(list(texts)), k, filter, budget=budget)

        def fetch(self, ids: Any) -> Any:
            raise AssertionError("fetch must not be called")

    env.target.pop("embedder")
    env.reload()
    env.context._targets["docs"] = AppSearch("docs", env.context.config.targets["docs"])
    first = baseline(env)
    result, _ = env.run()
    assert result.status == "ok" and result.details["verdict"] == "healthy"
    assert result.embedder_fingerprint is None
    assert result.details["fidelity"]["note"].startswith("approximate")
    v = values(result)
    assert v[("recall_ratio", "k=10,mode=live")] == values(first)[("recall_ratio", "k=10,mode=live")]
    assert ("golden_docs_missing_ratio", "") not in v


def test_vector_sample_of_the_index_is_described(env: Env) -> None:
    result = baseline(env)
    sample = result.details["causes"]["sample"]
    assert sample["n"] == 256 and sample["nan"] == 0 and sample["zero"] == 0
    assert sample["norm"]["min"] == pytest.approx(1.0, abs=1e-4)  # MiniLM normalises
    assert sample["norm"]["max"] == pytest.approx(1.0, abs=1e-4)


def test_a_daemon_settles_the_heap_after_each_probe_s_first_run_only(
    env: Env, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``ragmon run`` freezes what a probe's first run left alive (its index, golden set,
    the libraries it imported), so the collector's full passes stop walking it: one such
    pass per 1,000-query run cost 80 to 90 ms of the probe's own work
    (bench/recall_overhead.py). Later runs settle nothing more, and a runner built for a
    short-lived process (the CLI's one-off run, tests) never does. A settled heap also
    collects its youngest generation less often (a run's rows are freed by reference
    counting; 70 young passes per run were 6 to 10 ms)."""
    import gc

    from ragmon.monitor import runner as runner_module

    settled: list[int] = []
    monkeypatch.setattr(runner_module, "settle_heap", lambda: settled.append(1))
    assert env.context is not None
    runner = runner_module.Runner(env.context, CollectorRegistry(),
                                  env.context.plugins.probes, settle=True)
    for _ in range(2):
        assert runner.run(PROBE)[0].status == "ok"
    assert runner.run("canary")[0].status == "ok"
    assert env.run()[0].status == "ok"  # the env's runner: settle off
    assert settled == [1, 1]  # the first run of each of the two probes
    monkeypatch.undo()
    threshold = gc.get_threshold()
    try:
        runner_module.settle_heap()
        assert gc.get_freeze_count() > 0  # live objects left the collector's passes
        assert gc.get_threshold() == (runner_module.GC_YOUNG, *threshold[1:])
    finally:
        gc.unfreeze()  # the rest of the suite runs with a plain heap
        gc.set_threshold(*threshold)


def test_an_index_file_replaced_mid_run_is_read_in_one_version_per_run(
    env: Env, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An ingester that rewrites the index (atomic rename) while a run is between its live
    and its exact search: the run reads the version it started with in every step, so its
    live and exact sides, fidelity and verdict describe one index; the next run reads the
    new one. (Reading the new file for the exact side mixed two indexes: fidelity near 0
    and a verdict about neither; seen as a wrong alert in an end-to-end run.)"""
    from ragmon.monitor.targets.faiss import FaissTarget

    healthy = baseline(env)
    old_version = healthy.details["target"]["params"]["file_mtime_ns"]
    noise = np.random.default_rng(3).normal(size=env.vectors.shape).astype(np.float32)
    moved = env.vectors + 0.1 * noise  # every vector moved: another index, the same ids
    moved /= np.linalg.norm(moved, axis=1, keepdims=True)
    search = FaissTarget.search
    replaced: list[int] = []

    def search_then_rewrite(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = search(self, *args, **kwargs)
        if not replaced:
            time.sleep(0.01)  # a later mtime than the version the run holds
            write_index(env.index, moved, env.ids)
            replaced.append(1)
        return out

    monkeypatch.setattr(FaissTarget, "search", search_then_rewrite)
    during, _ = env.run()
    assert replaced and during.status == "ok", during.error
    assert during.details["target"]["params"]["file_mtime_ns"] == old_version
    v = values(during)
    assert v[("index_fidelity_ratio", "k=10")] == values(healthy)[("index_fidelity_ratio",
                                                                    "k=10")]
    assert during.details["verdict"] == "healthy", during.details["reasons"]
    monkeypatch.undo()
    after, _ = env.run()
    assert after.details["target"]["params"]["file_mtime_ns"] != old_version
    assert after.details["verdict"] != "healthy", after.details["reasons"]
