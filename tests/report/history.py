"""A week of real history for the report: real recall, canary and drift probe runs against
FAISS indexes of MiniLM embeddings of the stdlib corpus, with the in-daemon alert engine
evaluating each run, every run then moved to its place in a two-week timeline.

The probes run now (they read the clock); after each run its rows are moved to the
scenario's time: the run row, its drift statistics' windows, and the alert engine is given
the moved record, so alert episodes carry the scenario's times too. The story:

- previous week (three days of it): a healthy index, query traffic like the reference;
- this week: the index is searched with ``ef_search: 1`` from day 3 (recall verdict
  "index", an alert fires) and restored on day 5 (it resolves); from day 4 half the query
  traffic is about a topic the index does not hold (asyncio): drift, and queries outside
  its coverage.

Used by the report tests and to make the docs' sample (``python -m tests.report.history DIR``).
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from prometheus_client import CollectorRegistry
from sqlalchemy import update

from ragmon.alerts.config import AlertsConfig
from ragmon.alerts.engine import AlertEngine
from ragmon.alerts.report.model import Period
from ragmon.monitor.app import load_config
from ragmon.monitor.context import ProbeContext
from ragmon.monitor.runner import Runner
from ragmon.monitor.store import RunRecord, Store
from ragmon.monitor.store.models import ProbeRun
from ragmon.probes.drift.tables import DriftStatistic

GOLDEN = Path(__file__).parents[1] / "probes" / "recall" / "data" / "stdlib_golden.jsonl"
GAP_TOPIC = "asyncio"
UNTIL = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
WINDOW = 150


def write_index(path: Path, vectors: np.ndarray, ids: list[str], hnsw: bool) -> None:
    import faiss

    d = vectors.shape[1]
    if hnsw:
        index = faiss.IndexHNSWFlat(d, 8, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 40
    else:
        index = faiss.IndexFlatIP(d)
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    faiss.write_index(index, str(path))
    path.with_suffix(".ids").write_text("\n".join(ids) + "\n", encoding="utf-8")


@dataclass
class Week:
    """The deployment and what the scenario did, for tests to check the report against."""

    tmp: Path
    store_url: str
    minilm: Any
    texts: list[str]
    vectors: np.ndarray
    pool: np.ndarray
    gap: np.ndarray
    period: Period = Period(UNTIL - timedelta(days=7), UNTIL)
    run_ids: dict[str, list[int]] = field(default_factory=dict)
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(7))

    def __post_init__(self) -> None:
        shutil.copy(GOLDEN, self.tmp / "golden.jsonl")
        ids = [str(i) for i in range(len(self.texts))]
        write_index(self.tmp / "pool.faiss", self.vectors[self.pool],
                    [ids[i] for i in self.pool], hnsw=False)
        self.chunk_ids: list[str] = []
        self.store = Store(self.store_url)
        self.store.migrate()
        self.target: dict[str, Any] = {"kind": "faiss", "path": "docs.faiss",
                                       "ids_path": "docs.ids", "embedder": "minilm",
                                       "metric": "cosine", "ef_search": 64}
        self.context: ProbeContext | None = None

    def config(self) -> dict[str, Any]:
        return {
            "store": {"url": self.store_url},
            "embedders": {"minilm": {"kind": "sentence-transformers",
                                     "model": "all-MiniLM-L6-v2"}},
            "targets": {"docs": self.target,
                        "pool": {"kind": "faiss", "path": "pool.faiss", "ids_path": "pool.ids",
                                 "embedder": "minilm"}},
            "golden_sets": {"stdlib": {"path": "golden.jsonl"}},
            "probes": {
                "docs-recall": {"kind": "recall", "target": "docs", "golden_set": "stdlib",
                                "every": "6h", "timeout": "120s"},
                "canary": {"kind": "canary", "embedder": "minilm", "every": "6h"},
                "queries-drift": {"kind": "drift", "source": "queries", "target": "pool",
                                  "every": "1d", "window_size": WINDOW, "timeout": "120s",
                                  "min_samples": 50, "methods": ["mmd", "clusters"],
                                  "reference": {"size": 2 * WINDOW},
                                  "queries": {"jsonl": "queries.jsonl"}},
            },
            "alerts": {"rules": {
                "RecallIndexDegraded": {"probe": "docs-recall", "verdict": ["index"],
                                        "severity": "critical"},
                "QueryDrift": {"probe": "queries-drift", "field": "drift_alarm",
                               "condition": ">= 1"},
            }},
        }

    def reload(self) -> None:
        if self.context is not None:
            self.context.close()
        path = self.tmp / "ragmon.yaml"
        path.write_text(yaml.safe_dump(self.config()), encoding="utf-8")
        self.loaded = load_config(str(path))
        self.context = ProbeContext(self.loaded, self.store, self.loaded.plugins)
        self.context._embedders["minilm"] = self.minilm
        self.runner = Runner(self.context, CollectorRegistry(), self.context.plugins.probes)
        self.engine = AlertEngine(self.loaded.section("alerts", AlertsConfig), self.store)

    def run(self, probe: str, at: datetime) -> int:
        """One real run of ``probe``, moved to ``at`` with its statistics, then alerts."""
        result, run_id = self.runner.run(probe)
        assert run_id is not None, result.error
        took = timedelta(seconds=5)
        with self.store.session() as s:
            s.execute(update(ProbeRun).where(ProbeRun.id == run_id)
                      .values(started_at=at, finished_at=at + took))
            ids = (result.details or {}).get("statistic_ids") or []
            if ids:
                s.execute(update(DriftStatistic).where(DriftStatistic.id.in_(ids))
                          .values(window_start=at - timedelta(days=1), window_end=at))
        record = RunRecord(probe, self.loaded.probes[probe].kind, result.target, at, at + took,
                           result.status, result.error, result.details,
                           list(result.values), [], result.golden_version)
        self.engine.evaluate(probe, record, run_id)
        self.run_ids.setdefault(probe, []).append(run_id)
        return run_id

    def traffic(self, n: int, gap_share: float) -> None:
        """Append ``n`` queries to the drift probe's JSONL log, ``gap_share`` of them from
        the topic the index does not hold."""
        import json

        k = int(round(n * gap_share))
        rows = np.concatenate([self.rng.choice(self.pool, n - k, replace=False),
                               self.rng.choice(self.gap, k, replace=False)])
        with (self.tmp / "queries.jsonl").open("a", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps({"query": self.texts[r], "id": str(r),
                                    "vector": self.vectors[r].tolist()}) + "\n")

    def set_index(self, ef_search: int) -> None:
        self.target["ef_search"] = ef_search
        self.reload()

    def close(self) -> None:
        if self.context is not None:
            self.context.close()
        self.store.close()


def build_week(tmp: Path, minilm: Any, corpus: Any, vectors: np.ndarray,
               store_url: str | None = None) -> Week:
    """Run the scenario (24 real runs) and return the deployment."""
    topics = np.array([c.topic for c in corpus])
    week = Week(tmp, store_url or f"sqlite:///{tmp / 'ragmon.db'}", minilm,
                [c.text for c in corpus], np.asarray(vectors, dtype=np.float32),
                np.flatnonzero(topics != GAP_TOPIC), np.flatnonzero(topics == GAP_TOPIC))
    write_index(tmp / "docs.faiss", week.vectors, [c.id for c in corpus], hnsw=True)
    week.reload()
    # three days of the previous week, then every day of this one
    for day in (-6, -4, -2, 0, 1, 2, 3, 4, 5, 6):
        at = week.period.since + timedelta(days=day, hours=2)
        if day == 2:
            week.set_index(1)  # the index rebuilt with too short a search list
        if day == 4:
            week.set_index(64)
        week.run("docs-recall", at)
        if day in (-6, 0, 3, 6):  # the canary re-embeds its texts: a few runs tell it all
            week.run("canary", at)
        week.traffic(2 * WINDOW if day == -6 else WINDOW, 0.5 if day >= 3 else 0.0)
        week.run("queries-drift", at + timedelta(hours=1))
    return week


def main(argv: list[str]) -> int:
    """Build the week into DIR and write the report (``report.html``, ``report.txt``)."""
    from ragmon.alerts.report.render import render_report
    from ragmon.monitor.demo.corpus import stdlib_corpus
    from ragmon.monitor.demo.embeddings import cached_encode
    from ragmon.monitor.embedders.sentence_transformers import (
        SentenceTransformerEmbedder,
        SentenceTransformersConfig,
    )

    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    minilm = SentenceTransformerEmbedder("minilm", SentenceTransformersConfig(
        kind="sentence-transformers", model="all-MiniLM-L6-v2"))
    corpus = stdlib_corpus()
    week = build_week(out, minilm, corpus, cached_encode(minilm, [c.text for c in corpus]))
    rendered = render_report(week.store, week.loaded, week.period, now=week.period.until)
    (out / "report.html").write_text(rendered.html_file, encoding="utf-8")
    (out / "report.txt").write_text(rendered.text, encoding="utf-8")
    week.close()
    print(rendered.text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
