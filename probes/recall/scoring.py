"""Scoring of a recall run: per query and mode, the metrics of the ranking the golden set
judges (chunks, or with ``documents`` the documents, collapsed by MaxP, chunk-level kept
under ``chunks``), and the run's values from them.

trec_eval semantics (:mod:`probes.recall.metrics`); a failed query scores 0 with no ids.
"""

from __future__ import annotations

import copy
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
    break_ties,
    stored_batch,
    stored_means,
    zero_metrics,
)


def score(
    cfg: RecallConfig, golden: GoldenSet, s: Searched, docs: DocumentMap | None = None,
) -> dict[str, dict[str, Any]]:
    """Per query and mode, the metrics of the ranking the golden set judges: chunks, or
    with ``docs`` the documents (MaxP), chunk-level kept under ``chunks``. The ``exact``
    side exists for the queries that had ground truth this run (``s.truth``). Metrics are
    computed for all sides at once (:func:`~probes.recall.metrics.stored_batch`)."""
    rows: dict[str, dict[str, Any]] = {}
    mapping = None if docs is None else docs.describe()
    digests = golden.judgment_digests(mapping)
    sides = _Sides(cfg)
    for i, q in enumerate(golden.queries):
        row: dict[str, Any] = {"status": s.status[i], "judgments": digests[i]}
        if s.error[i]:
            row["error"] = s.error[i]
        modes = [("live", s.live_ids[i], s.live_scores[i])]
        if s.truth[i]:
            modes.append(("exact", s.exact_ids[i], s.exact_scores[i]))
        ok = s.status[i] == "ok"
        for mode, ids, scores in modes:
            if docs is None:
                sides.add(row, mode, break_ties(ids, scores), q.relevant, ok)
                continue
            ranked = break_ties(ids, scores)
            judged = docs.judged_chunks(q.relevant)
            chunks = row.setdefault("chunks", {})
            if judged:
                sides.add(chunks, mode, ranked, judged, ok)
            else:
                chunks[mode] = {"ids": ranked if ok else []}
            sides.add(row, mode, collapse(ids, scores, docs.of), docs.lift(q.relevant), ok)
        if docs is not None:
            row["doc_chunks"] = doc_chunks(row, q.relevant, docs)
        rows[q.id] = row
    sides.fill()
    return rows


class _Sides:
    """Each mode's ranked ids and metrics, placed as they are met and filled in one batch;
    a failed query scores 0 with no ids."""

    def __init__(self, cfg: RecallConfig):
        self.ks = tuple(cfg.k)
        self.keys = tuple(str(k) for k in self.ks)
        self.gain = cfg.gain
        self.zero = zero_metrics(self.ks).as_dict()
        self.places: list[dict[str, Any]] = []
        self.ranked: list[list[str]] = []
        self.grades: list[dict[str, float]] = []

    def add(self, into: dict[str, Any], key: str, ranked: list[str], grades: dict[str, float],
            ok: bool) -> None:
        if not ok:
            into[key] = {"ids": [], **copy.deepcopy(self.zero)}
            return
        into[key] = place = {"ids": ranked}  # its ids now (read before the batch is filled)
        self.places.append(place)
        self.ranked.append(ranked)
        self.grades.append(grades)

    def fill(self) -> None:
        for place, side in zip(self.places, stored_batch(self.ranked, self.grades, self.ks,
                                                          self.keys, self.gain), strict=True):
            place.update(side)


def add_values(
    cfg: RecallConfig, result: ProbeResult, golden: GoldenSet, s: Searched,
    rows: dict[str, Any], causes: dict[str, Any], comparisons: dict[str, Any],
    desc: Description, ev: Evidence, verdict: str,
) -> None:
    """The run's values: labelled metrics per mode (``exact``: over the queries that had
    ground truth), the shortfall, the comparison, the verdict and the causes' ratios."""
    for mode in ("live", "exact"):
        sides = [r[mode] for r in rows.values() if mode in r]
        if not sides:
            continue
        means = stored_means(sides, cfg.k)
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
        means = stored_means(sides, cfg.k)
        for k in cfg.k:
            result.add("chunk_recall_ratio", means["recall"][k], k=k, mode=mode)
            result.add("chunk_ndcg_ratio", means["ndcg"][k], k=k, mode=mode)
