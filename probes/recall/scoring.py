"""Scoring of a recall run: per query and mode, the metrics of the ranking the golden set
judges (chunks, or with ``documents`` the documents, collapsed by MaxP, chunk-level kept
under ``chunks``), and the run's values from them.

trec_eval semantics (:mod:`probes.recall.metrics`); a failed query scores 0 with no ids.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ragmon.monitor.probe import ProbeResult
from ragmon.monitor.targets.abc import Description
from ragmon.probes.recall._search import Searched
from ragmon.probes.recall.attribution import VERDICTS, Evidence
from ragmon.probes.recall.config import RecallConfig
from ragmon.probes.recall.documents import DocumentMap, collapse, doc_chunks
from ragmon.probes.recall.evidence import mean
from ragmon.probes.recall.fidelity import latency_quantiles
from ragmon.probes.recall.golden import GoldenSet
from ragmon.probes.recall.metrics import (
    QueryMetrics,
    break_ties,
    mean_metrics,
    query_metrics,
    zero_metrics,
)


def score(
    cfg: RecallConfig, golden: GoldenSet, s: Searched, docs: DocumentMap | None = None,
) -> dict[str, dict[str, Any]]:
    """Per query and mode, the metrics of the ranking the golden set judges: chunks, or
    with ``docs`` the documents (MaxP), chunk-level kept under ``chunks``. The ``exact``
    side exists for the queries that had ground truth this run (``s.truth``)."""
    rows: dict[str, dict[str, Any]] = {}
    mapping = None if docs is None else docs.describe()
    for i, q in enumerate(golden.queries):
        row: dict[str, Any] = {"status": s.status[i], "judgments": judgments(q.relevant, mapping)}
        if s.error[i]:
            row["error"] = s.error[i]
        modes = [("live", s.live_ids[i], s.live_scores[i])]
        if s.truth[i]:
            modes.append(("exact", s.exact_ids[i], s.exact_scores[i]))
        ok = s.status[i] == "ok"
        for mode, ids, scores in modes:
            if docs is None:
                row[mode] = side(cfg, break_ties(ids, scores), q.relevant, ok)
                continue
            ranked = break_ties(ids, scores)
            judged = docs.judged_chunks(q.relevant)
            row.setdefault("chunks", {})[mode] = \
                side(cfg, ranked, judged, ok) if judged else {"ids": ranked if ok else []}
            row[mode] = side(cfg, collapse(ids, scores, docs.of), docs.lift(q.relevant), ok)
        if docs is not None:
            row["doc_chunks"] = doc_chunks(row, q.relevant, docs)
        rows[q.id] = row
    return rows


def judgments(relevant: dict[str, float], mapping: str | None = None) -> str:
    """Digest of a query's judgments (and of the document mapping: runs judged at another
    level are never paired with each other)."""
    items: list[Any] = sorted(relevant.items())
    if mapping is not None:
        items.append(["documents", mapping])
    blob = json.dumps(items, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def side(cfg: RecallConfig, ranked: list[str], grades: dict[str, float],
         ok: bool) -> dict[str, Any]:
    """One mode's ranked ids and metrics; a failed query scores 0 with no ids."""
    if not ok:
        return {"ids": [], **zero_metrics(cfg.k).as_dict()}
    return {"ids": ranked, **query_metrics(ranked, grades, cfg.k, cfg.gain).as_dict()}


def add_values(
    cfg: RecallConfig, result: ProbeResult, golden: GoldenSet, s: Searched,
    rows: dict[str, Any], causes: dict[str, Any], comparisons: dict[str, Any],
    desc: Description, ev: Evidence, verdict: str,
) -> None:
    """The run's values: labelled metrics per mode (``exact``: over the queries that had
    ground truth), the shortfall, the comparison, the verdict and the causes' ratios."""
    for mode in ("live", "exact"):
        sides = [as_metrics(r[mode]) for r in rows.values() if mode in r]
        if not sides:
            continue
        means = mean_metrics(sides, cfg.k)
        for k in cfg.k:
            result.add("recall_ratio", means["recall"][k], k=k, mode=mode)
            result.add("precision_ratio", means["precision"][k], k=k, mode=mode)
            result.add("hit_rate_ratio", means["hit"][k], k=k, mode=mode)
            result.add("ndcg_ratio", means["ndcg"][k], k=k, mode=mode)
        result.add("mrr_ratio", means["mrr"][0], mode=mode)
    level_values(cfg, result, rows)
    if any("fidelity" in r for r in rows.values()):
        for k in cfg.k:
            fid = [r["fidelity"] for r in rows.values() if "fidelity" in r]
            result.add("index_shortfall_ratio",
                       mean([float(f["shortfall"][str(k)]) for f in fid]), k=k)
    for k in cfg.k:
        c = comparisons.get(f"live@{k}")
        if c is not None:
            result.add("recall_drop_significant", int(c.significant_drop), k=k)
            result.add("recall_delta_ratio", c.mean_delta, k=k)
    for name in VERDICTS:
        result.add("recall_verdict", int(name == verdict), verdict=name)
    result.add("recall_verdict_k", cfg.decision_k, k=cfg.decision_k)
    if "docs_missing" in causes and causes["docs_total"]:
        result.add("golden_docs_missing_ratio",
                   len(causes["docs_missing"]) / causes["docs_total"])
    if ev.docs_compared:
        result.add("golden_docs_changed_ratio", ev.docs_changed / ev.docs_compared)
    n = len(golden.queries)
    result.add("golden_queries", n)
    result.add("golden_queries_failed_ratio", sum(st != "ok" for st in s.status) / n)
    result.add("index_vectors", desc.count)
    for stat, value in latency_quantiles(s.latencies).items():
        result.add("search_latency_seconds", value, stat=stat)


def level_values(cfg: RecallConfig, result: ProbeResult, rows: dict[str, Any]) -> None:
    """With documents judged: the document shortfall, and chunk-level recall and nDCG
    over the queries that judge chunks."""
    if cfg.documents is None:
        return
    for k in cfg.k:
        short = [len(r["live"]["ids"]) < k for r in rows.values() if r["status"] == "ok"]
        result.add("document_shortfall_ratio", mean([float(x) for x in short]), k=k)
    for mode in ("live", "exact"):
        sides = [r["chunks"][mode] for r in rows.values()
                 if mode in r["chunks"] and "recall" in r["chunks"][mode]]
        if not sides:
            continue
        means = mean_metrics([as_metrics(one) for one in sides], cfg.k)
        for k in cfg.k:
            result.add("chunk_recall_ratio", means["recall"][k], k=k, mode=mode)
            result.add("chunk_ndcg_ratio", means["ndcg"][k], k=k, mode=mode)


def as_metrics(side: dict[str, Any]) -> QueryMetrics:
    """A stored side (JSON: string keys) back as metrics."""
    def ints(d: dict[str, float]) -> dict[int, float]:
        return {int(k): v for k, v in d.items()}

    return QueryMetrics(ints(side["recall"]), ints(side["precision"]), ints(side["hit"]),
                        ints(side["ndcg"]), side["rr"], side["relevant_ranks"])
