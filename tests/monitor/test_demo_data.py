"""The demo's knowledge base: its golden set, the BEIR export, and the query-traffic generator.

On real parts: the standard-library corpus, the bundled MiniLM, ragmon's own golden-set
and BEIR loaders, its MMD drift test and its JSONL ingest parser.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragmon.monitor.demo import traffic
from ragmon.monitor.demo.beir import demo_golden_path, document_of, documents, export_beir
from ragmon.monitor.demo.embeddings import cached_encode
from ragmon.monitor.errors import GoldenSetError
from ragmon.probes.recall._formats import load_beir
from ragmon.probes.recall.documents import collapse
from ragmon.probes.recall.golden import load_ragmon
from ragmon.probes.recall.metrics import mean_metrics, query_metrics

GOLDEN = demo_golden_path()
#: A question shares no run of this many words with the text of the documents it judges.
SHINGLE = 5


@pytest.fixture(scope="module")
def golden() -> list[Any]:
    return load_ragmon(GOLDEN)


@pytest.fixture(scope="module")
def docs(corpus: Any) -> dict[str, str]:
    return documents(corpus)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9_]+", text.lower())


def shingles(text: str, n: int) -> set[str]:
    w = words(text)
    return {" ".join(w[i:i + n]) for i in range(len(w) - n + 1)}


def test_golden_set_has_over_100_tagged_questions_over_many_topics(golden: list[Any]) -> None:
    assert len(golden) >= 100
    assert len({q.text.lower() for q in golden}) == len(golden)  # no repeated question
    assert all(len(q.tags) == 2 for q in golden)  # [module, topic]
    modules = Counter(q.tags[0] for q in golden)
    topics = Counter(q.tags[1] for q in golden)
    assert len(modules) >= 60 and len(topics) >= 12, (modules, topics)
    assert max(topics.values()) <= 0.2 * len(golden)  # no topic dominates
    # graded: 2 = the answer, 1 = related; many questions have both
    grades = {g for q in golden for g in q.relevant.values()}
    assert grades == {1.0, 2.0}
    assert sum(set(q.relevant.values()) == {1.0, 2.0} for q in golden) >= len(golden) // 3


def test_every_judgment_names_a_document_of_the_corpus(golden: list[Any],
                                                        docs: dict[str, str]) -> None:
    judged = {d for q in golden for d in q.relevant}
    assert judged <= set(docs), sorted(judged - set(docs))
    # judged by document, not by chunk: no id carries a chunk number
    assert all(document_of(d) == d for d in judged)
    # a question's module tag is the module of (one of) its documents
    for q in golden:
        assert any(d == q.tags[0] or d.startswith(q.tags[0] + ".") for d in q.relevant), q.id


def test_questions_do_not_copy_the_text_they_are_judged_on(golden: list[Any],
                                                           docs: dict[str, str]) -> None:
    copied = {}
    for q in golden:
        text = " ".join(words(" ".join(docs[d] for d in q.relevant)))
        found = sorted(s for s in shingles(q.text, SHINGLE) if s in text)
        if found:
            copied[q.id] = found
    assert copied == {}


def test_the_check_catches_a_copied_question(docs: dict[str, str]) -> None:
    copied = " ".join(words(docs["shutil.rmtree"])[:8])
    text = " ".join(words(docs["shutil.rmtree"]))
    assert any(s in text for s in shingles(copied, SHINGLE))


def test_every_question_finds_a_judged_document_with_minilm(
        golden: list[Any], corpus: Any, corpus_vectors: np.ndarray, minilm: Any) -> None:
    """Exact search over the whole corpus, chunks collapsed to documents: each question's
    judged documents are reachable (top 50), and recall is meaningful on the whole."""
    ids = [c.id for c in corpus]
    queries = cached_encode(minilm, [q.text for q in golden])
    scores = queries @ np.asarray(corpus_vectors).T
    per_query, unreachable = [], []
    for q, row in zip(golden, scores, strict=True):
        top = np.argsort(-row, kind="stable")[:300]
        ranked = collapse([ids[i] for i in top], [float(row[i]) for i in top], document_of)
        m = query_metrics(ranked, q.relevant, [1, 5, 10, 50])
        per_query.append(m)
        if not m.hit[50]:
            unreachable.append(q.id)
    assert unreachable == []
    means = mean_metrics(per_query, [1, 5, 10, 50])
    # measured 0.31 / 0.70 / 0.84, nDCG@10 0.66 (exact search, document level)
    assert means["recall"][10] >= 0.75, means
    assert means["ndcg"][10] >= 0.55, means
    assert means["recall"][1] < means["recall"][5] < means["recall"][10]


def test_beir_export_reads_back_to_the_same_judgments(tmp_path: Path, golden: list[Any],
                                                      docs: dict[str, str]) -> None:
    folder = export_beir(tmp_path / "beir")
    loaded = {q.id: q for q in load_beir(folder, "test")}
    assert set(loaded) == {q.id for q in golden}
    for q in golden:
        assert (loaded[q.id].text, loaded[q.id].relevant) == (q.text, q.relevant)
    corpus = [json.loads(line) for line in (folder / "corpus.jsonl").read_text().splitlines()]
    assert {d["_id"] for d in corpus} == set(docs)
    by_id = {d["_id"]: d for d in corpus}
    assert by_id["json.dumps"]["text"] == docs["json.dumps"]
    assert by_id["json.dumps"]["text"].startswith("json.dumps: Serialize")
    tags = {json.loads(line)["_id"]: json.loads(line)["metadata"]["tags"]
            for line in (folder / "queries.jsonl").read_text().splitlines()}
    assert tags == {q.id: list(q.tags) for q in golden}


def test_a_document_keeps_every_chunk_once(corpus: Any, docs: dict[str, str]) -> None:
    chunks = [c for c in corpus if document_of(c.id) == "shutil.copytree"]
    assert len(chunks) >= 2
    for c in chunks:
        body = c.text.removeprefix("shutil.copytree: ")
        assert docs["shutil.copytree"].count(body) == 1
    assert docs["shutil.copytree"].count("shutil.copytree: ") == 1


def test_beir_export_refuses_a_judgment_outside_the_corpus(tmp_path: Path) -> None:
    bad = tmp_path / "golden.jsonl"
    bad.write_text('{"id": "a", "query": "x", "relevant": {"json.dumps": 2}}\n'
                   '{"id": "b", "query": "y", "relevant": {"json.dumpz": 2}}\n')
    with pytest.raises(GoldenSetError, match=r"golden.jsonl:2: query 'b' judges 'json.dumpz'"):
        export_beir(tmp_path / "out", bad)
    bad.write_text('{"id": "a", "query": "x", "relevant": {"json.dumps": 2}}\n{"id": "b"\n')
    with pytest.raises(GoldenSetError, match=r"golden.jsonl:2: invalid JSON"):
        export_beir(tmp_path / "out", bad)
    assert not (tmp_path / "out").exists()


def test_traffic_is_deterministic_per_seed_and_follows_the_mix() -> None:
    healthy = traffic.healthy_mix()
    assert set(healthy) == set(traffic.covered_topics()) and abs(sum(healthy.values()) - 1) < 1e-9
    assert traffic.generate(50, healthy, seed=7) == traffic.generate(50, healthy, seed=7)
    assert traffic.generate(50, healthy, seed=7) != traffic.generate(50, healthy, seed=8)
    ml = traffic.generate(40, {"ml-training": 1.0}, seed=1)
    intents = traffic.OFF_INDEX_INTENTS["ml-training"]
    assert all(any(i in t for i in intents) for t in ml)
    mix = traffic.shifted(healthy, ["ml-training", "held-out-stdlib"], 0.4)
    assert mix["ml-training"] == pytest.approx(0.2) and abs(sum(mix.values()) - 1) < 1e-9
    assert mix["files"] == pytest.approx(0.6 * healthy["files"])
    # held-out modules are really out of the index
    indexed = {c.topic for c in traffic.stdlib_corpus()}
    assert indexed.isdisjoint(traffic.HELD_OUT_MODULES)
    held = traffic.generate(30, {"held-out-stdlib": 1.0}, seed=1)
    objects = traffic.held_out_objects()
    assert len(objects) > 50 and all(any(o in t for o in objects) for t in held), held
    # users rephrase: most generated texts are not a golden question verbatim
    golden_texts = {q.text.lower() for q in load_ragmon(GOLDEN)}
    generated = traffic.generate(300, healthy, seed=3)
    assert sum(t.lower() in golden_texts for t in generated) < 0.2 * len(generated)
    assert len(set(generated)) > 0.8 * len(generated)
    with pytest.raises(ValueError, match="unknown topic 'cooking'"):
        traffic.generate(5, {"cooking": 1.0})


def test_traffic_lines_are_what_the_drift_ingest_reads(tmp_path: Path) -> None:
    from ragmon.probes.drift.config import DriftConfig
    from ragmon.probes.drift.ingest import parse_item

    cfg = DriftConfig(kind="drift", source="queries", target="docs",
                      queries={"jsonl": "traffic.jsonl"})
    texts = traffic.generate(20, seed=1)
    path = tmp_path / "traffic.jsonl"
    traffic.append_jsonl(path, texts[:10])
    traffic.append_jsonl(path, texts[10:])
    lines = path.read_text(encoding="utf-8").splitlines()
    items = [parse_item(json.loads(line), cfg, f"line {i}") for i, line in enumerate(lines)]
    assert [it.text for it in items] == texts
    traffic.window(tmp_path, 30, seed=2, shift=True)
    assert len(path.read_text(encoding="utf-8").splitlines()) == 50


def test_topic_shift_drifts_and_the_same_mix_does_not(minilm: Any, corpus_vectors: Any) -> None:
    """Real MiniLM embeddings and ragmon's MMD test: windows of the same mix (other seeds)
    are not significant; moving 30% of the traffic to questions the docs do not answer, or
    half of it to modules held out of the index, is; and those off-index questions sit
    farther from everything indexed than everyday ones."""
    from ragmon.probes.drift.methods.mmd import mmd

    healthy = traffic.healthy_mix()

    def window(mix: dict[str, float], n: int, seed: int) -> np.ndarray:
        return np.asarray(cached_encode(minilm, traffic.generate(n, mix, seed=seed)))

    reference = window(healthy, 200, 1)
    alpha = 0.01
    for seed in (2, 3):
        assert mmd(reference, window(healthy, 100, seed), permutations=400).p_value > alpha
    for topic, share in (("ml-training", 0.3), ("held-out-stdlib", 0.5)):
        shifted = window(traffic.shifted(healthy, topic, share), 100, 10)
        assert mmd(reference, shifted, permutations=400).p_value <= alpha, topic

    index = np.asarray(corpus_vectors, dtype=np.float32)
    nearest = {topic: float((window({topic: 1.0}, 40, 5) @ index.T).max(axis=1).mean())
               for topic in ("ml-training", "held-out-stdlib")}
    everyday = float((reference[:40] @ index.T).max(axis=1).mean())
    assert all(v < everyday for v in nearest.values()), (nearest, everyday)


def test_traffic_posts_to_the_daemons_ingest_endpoint(tmp_path: Path) -> None:
    """ragmon's own HTTP server and ingest app, on 127.0.0.1, store the posted texts."""
    import urllib.error

    import yaml
    from prometheus_client import CollectorRegistry

    from ragmon.monitor.app import load_config
    from ragmon.monitor.http import App, HttpServer
    from ragmon.monitor.store import Store
    from ragmon.probes.drift.ingest import IngestApp, drift_probes
    from ragmon.probes.drift.state import peek_window

    store_url = f"sqlite:///{tmp_path / 'ragmon.db'}"
    (tmp_path / "ragmon.yaml").write_text(yaml.safe_dump({
        "store": {"url": store_url},
        "embedders": {"minilm": {"kind": "sentence-transformers"}},
        "probes": {"query-drift": {
            "kind": "drift", "source": "queries", "embedder": "minilm", "every": "1h",
            "window_size": 100, "queries": {"http": True, "token": "s3cret"}}},
    }))
    config = load_config(str(tmp_path / "ragmon.yaml"))
    store = Store(store_url)
    store.migrate()
    server = HttpServer(App(CollectorRegistry(), lambda: (True, "ok"), lambda: (True, "ok"),
                            {"/ingest": IngestApp(store, drift_probes(config))}), "127.0.0.1", 0)
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/ingest/query-drift"
        texts = traffic.generate(30, traffic.shifted(traffic.healthy_mix(), "ml-training", 0.5))
        assert traffic.post(url, texts, token="s3cret") == {"accepted": 30}
        assert sorted(it.text for it in peek_window(store, "query-drift").items) == sorted(texts)
        with pytest.raises(urllib.error.HTTPError, match="401"):
            traffic.post(url, texts[:1], token="wrong")
    finally:
        server.stop()
        store.close()
