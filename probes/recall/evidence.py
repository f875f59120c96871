"""The causes phase of a recall run and the evidence the verdict is decided on.

Causes: are the golden documents still in the index, are their stored vectors and the
golden query vectors the same as the baseline's (by cosine, not only by digest), what did
the canary of the same embedder see, and has the index configuration changed. Evidence adds
the paired comparisons with the baseline run (labelled recall live and exact, and index
fidelity).
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

import numpy as np

from ragmon.monitor.store import Store
from ragmon.monitor.targets.abc import Description, VectorTarget
from ragmon.probes.recall import history
from ragmon.probes.recall.attribution import Evidence
from ragmon.probes.recall.canary_check import canary_evidence, canary_names
from ragmon.probes.recall.compare import (
    Comparison,
    compare_at,
    paired_bootstrap_ci,
    paired_queries,
)
from ragmon.probes.recall.config import RecallConfig
from ragmon.probes.recall.fidelity import shortfall
from ragmon.probes.recall.golden import GoldenSet
from ragmon.probes.recall.golden_diff import NAMED, GoldenDiff, diff_golden
from ragmon.probes.recall.groundtruth import fidelity_interval


def gather_causes(
    probe: str, cfg: RecallConfig, context: Any, target: VectorTarget, golden: GoldenSet,
    vectors: np.ndarray | None, emb_fp: str | None, desc: Description,
) -> dict[str, Any]:
    """Golden documents present and their vectors, the stored reference samples this run
    used, and the canary's latest word."""
    store = context.store
    doc_ids = golden.doc_ids()
    causes: dict[str, Any] = {"index_count": desc.count, "docs_total": len(doc_ids)}
    refs: dict[str, int | None] = {}
    qids = [q.id for q in golden.queries]
    refs["queries"] = None if vectors is None else history.keep_reference(
        store, probe, history.QUERY_SOURCE, emb_fp or "vectors", qids, vectors)
    if target.supports_fetch:
        got = target.fetch(doc_ids)
        causes["docs_missing"] = sorted(got.missing)
        causes["doc_vectors"] = {d: got.vectors[n] for n, d in enumerate(got.ids)}
        refs["docs"] = history.keep_reference(store, probe, history.DOC_SOURCE,
                                              desc.fingerprint(), list(got.ids), got.vectors)
    causes["references"] = refs
    if target.supports_fetch and cfg.sample_size:
        causes["sample"] = vector_stats(target.sample(cfg.sample_size, seed=0).vectors)
    causes["canary"] = _canary(cfg, context, emb_fp)
    return causes


def _canary(cfg: RecallConfig, context: Any, emb_fp: str | None) -> dict[str, Any] | None:
    """The canary's word on the pipeline this run embedded its queries with; an inline
    check needs that embedder, so a run that embedded nothing loads no model for it."""
    try:
        emb_name, embedder = context.embedder_for(cfg)
    except ValueError:
        emb_name, embedder = None, None
    probes = context.config.probes
    names = canary_names(probes, emb_name, cfg.canary)
    return canary_evidence(context.store, probes, names, emb_name, emb_fp,
                           embedder if emb_fp is not None else None)


def build_evidence(
    cfg: RecallConfig, store: Store, baseline: history.Baseline | None,
    rows: dict[str, dict[str, Any]], causes: dict[str, Any], emb_fp: str | None,
    desc: Description, golden: GoldenSet,
) -> tuple[Evidence, dict[str, Comparison]]:
    """Everything the verdict is decided on, and the comparisons with the baseline
    (``live@k`` for every k, ``exact@k`` at the verdict's k), over the queries the
    baseline's golden set version shares unchanged with this run's."""
    kv = cfg.decision_k
    measured = [r["fidelity"] for r in rows.values() if "fidelity" in r]
    ev = Evidence(fidelity_floor=cfg.fidelity_floor, docs_total=causes["docs_total"])
    ev.docs_missing = len(causes.get("docs_missing", []))
    ev.docs_missing_ids = causes.get("docs_missing", [])[:NAMED]
    ev.queries_failed = sum(r["status"] != "ok" for r in rows.values())
    ev.fidelity = mean([f["recall"][str(kv)] for f in measured]) if measured else None
    ev.fidelity_measurable = ev.fidelity is not None
    if measured:
        ci = fidelity_interval([f["recall"][str(kv)] for f in measured], len(rows),
                               1.0 - cfg.alpha)
        ev.fidelity_lower, ev.fidelity_upper = ci.lower, ci.upper
        ev.fidelity_queries, ev.fidelity_total = len(measured), len(rows)
    ev.fidelity_k = kv
    short = shortfall(rows, cfg.k, desc)  # at any k: a cap below the largest k is the index's
    if short is not None:
        ev.shortfall_ratio, ev.shortfall_k, ev.shortfall_cause = short.ratio, short.k, short.cause
    ev.canary = causes.get("canary")
    ev.canary_changed = None if ev.canary is None else ev.canary["changed"]
    comparisons: dict[str, Comparison] = {}
    if baseline is None:
        return ev, comparisons
    ev.baseline = True
    old = baseline.run
    ev.golden_changed = old.golden_version != golden.version
    same_query: set[str] | None = None  # None: every id is the same query
    if ev.golden_changed:
        diff = _golden_diff(store, golden, old.golden_version)
        ev.golden_diff = None if diff is None else diff.summary()
        same_query = None if diff is None else diff.same_query
    ev.embedder_changed = bool(emb_fp and old.embedder_fingerprint
                               and emb_fp != old.embedder_fingerprint)
    old_target = (old.details or {}).get("target", {})
    ev.index_config_changed = bool(old_target) and \
        old_target.get("config_digest") != config_digest(desc)
    before = baseline.rows if same_query is None else \
        {q: r for q, r in baseline.rows.items() if q in same_query}
    _compare(cfg, ev, comparisons, before, rows)
    _vector_changes(cfg, store, ev, old, causes, rows, same_query)
    return ev, comparisons


def _golden_diff(store: Store, golden: GoldenSet, old_version: str | None) -> GoldenDiff | None:
    """The edits since the baseline's version (None: that version is not in the store, so
    queries pair by id and judgments alone)."""
    old_rows = None if old_version is None else \
        history.golden_rows(store, golden.name, old_version)
    return None if old_rows is None else diff_golden(old_rows, golden.to_json())


def _compare(cfg: RecallConfig, ev: Evidence, comparisons: dict[str, Comparison],
             before: dict[str, Any], rows: dict[str, Any]) -> None:
    kv = cfg.decision_k
    compare = functools.partial(compare_at, alpha=cfg.alpha, min_effect=cfg.min_effect,
                                resamples=cfg.bootstrap_resamples)
    paired = paired_queries(before, rows)
    for k, c in compare(before, rows, cfg.k, "live", qids=paired).items():
        comparisons[f"live@{k}"] = c
    ev.live_drop = comparisons[f"live@{kv}"].significant_drop
    # exact sides: the queries that had ground truth in both runs (all of them, unless
    # the ground-truth budget measured a subset)
    now = {q: r for q, r in rows.items() if "exact" in r}
    then = {q: r for q, r in before.items() if "exact" in r}
    if now and then:
        comparisons[f"exact@{kv}"] = compare(then, now, [kv], "exact")[kv]
        ev.exact_drop = comparisons[f"exact@{kv}"].significant_drop
    _fidelity_change(cfg, ev, before, rows, kv, paired)


def _fidelity_change(cfg: RecallConfig, ev: Evidence, before: dict[str, Any],
                     after: dict[str, Any], k: int, paired: list[str]) -> None:
    """Change of per-query fidelity: a drop needs its whole confidence interval below 0 and
    a mean of at least ``fidelity_min_effect``. Paired (bootstrap) when both runs measured
    the same queries; else, with a ground-truth subset in either run, the difference of the
    two runs' means with each one's sampling error (:func:`unpaired_drop`)."""
    qids = [q for q in paired if "fidelity" in before[q] and "fidelity" in after[q]]
    if not qids:
        return
    # a query both runs answered but only one measured: a ground-truth subset
    if any(("fidelity" in before[q]) != ("fidelity" in after[q])
           for q in paired
           if before[q].get("status", "ok") == "ok" and after[q].get("status") == "ok"):
        ev.fidelity_baseline, ev.fidelity_drop = unpaired_drop(
            [before[q]["fidelity"]["recall"].get(str(k), 0.0) for q in before
             if "fidelity" in before[q]],
            [after[q]["fidelity"]["recall"].get(str(k), 0.0) for q in after
             if "fidelity" in after[q]],
            len(before), len(after), cfg.alpha, cfg.fidelity_min_effect)
        return
    f0 = np.array([before[q]["fidelity"]["recall"].get(str(k), 0.0) for q in qids])
    f1 = np.array([after[q]["fidelity"]["recall"].get(str(k), 0.0) for q in qids])
    ev.fidelity_baseline = float(f0.mean())
    delta = f1 - f0
    _, high = paired_bootstrap_ci(delta, cfg.bootstrap_resamples, 1.0 - cfg.alpha)
    ev.fidelity_drop = bool(high < 0 and delta.mean() <= -cfg.fidelity_min_effect)


def _vector_changes(cfg: RecallConfig, store: Store, ev: Evidence, old: Any,
                    causes: dict[str, Any], rows: dict[str, Any],
                    same_query: set[str] | None) -> None:
    """Golden query vectors (of the queries whose text is unchanged) and golden document
    vectors against the baseline's, by cosine."""
    old_refs = (old.details or {}).get("references", {})
    refs = causes["references"]
    if old_refs.get("queries") is not None and refs.get("queries") != old_refs["queries"]:
        before = history.load_reference(store, old_refs["queries"])
        now = history.load_reference(store, refs.get("queries"))
        if same_query is not None:
            now = {q: v for q, v in now.items() if q in same_query}
        cos = cosines(before, now)
        ev.queries_compared = len(cos)
        ev.query_vectors_changed = int(sum(c < cfg.vector_cosine_threshold for c in cos))
        ev.query_min_cosine = min(cos) if cos else None
    elif old_refs.get("queries") is not None:
        ev.queries_compared = len(rows)  # the same stored sample: nothing moved
    if old_refs.get("docs") is not None and "doc_vectors" in causes:
        # a judged document's remembered chunks count for it (probes/recall/documents.py)
        doc_of = causes.get("chunk_docs", {})
        if refs.get("docs") == old_refs["docs"]:
            # the same stored sample (equal digest of ids and vectors): nothing moved
            before, changed = causes["doc_vectors"], []
        else:
            before = history.load_reference(store, old_refs["docs"])
            changed = sorted({doc_of.get(c, c) for c in changed_ids(
                before, causes["doc_vectors"], cfg.vector_cosine_threshold)})
        ev.docs_compared = len({doc_of.get(d, d) for d in causes["doc_vectors"] if d in before})
        ev.docs_changed = len(changed)
        ev.docs_changed_ids = changed[:NAMED]


def unpaired_drop(f0: list[float], f1: list[float], n0: int, n1: int, alpha: float,
                  min_effect: float) -> tuple[float, bool]:
    """(baseline mean, dropped) for two runs whose fidelity was measured on different
    random subsets of ``n0`` and ``n1`` queries: the difference of means with the sampling
    variance of each (finite-population corrected; nil for a fully measured run)."""
    from scipy.stats import norm

    a, b = np.asarray(f0, dtype=float), np.asarray(f1, dtype=float)

    def var(x: np.ndarray, n: int) -> float:
        return float(x.var(ddof=1)) / x.size * max(0.0, 1 - x.size / n) if x.size > 1 else 0.0

    delta = float(b.mean() - a.mean())
    high = delta + float(norm.ppf(1 - alpha / 2)) * (var(a, n0) + var(b, n1)) ** 0.5
    return float(a.mean()), bool(high < 0 and delta <= -min_effect)


def changed_ids(before: dict[str, np.ndarray], now: dict[str, np.ndarray],
                threshold: float) -> list[str]:
    """The ids both have whose vector moved (cosine below ``threshold``), sorted."""
    shared = sorted(i for i in now if i in before)
    cos = cosines({i: before[i] for i in shared}, {i: now[i] for i in shared})
    return [i for i, c in zip(shared, cos, strict=True) if c < threshold]


def vector_stats(vectors: np.ndarray) -> dict[str, Any]:
    """What a sample of stored vectors says about the index's health: NaN or all-zero
    vectors (a broken ingestion), exact duplicates, and the norm distribution (a pipeline
    that stopped normalising shows up here)."""
    arr = np.asarray(vectors, dtype=np.float64)
    if arr.size == 0:
        return {"n": 0}
    finite = np.isfinite(arr).all(axis=1)
    norms = np.linalg.norm(arr[finite], axis=1)
    unique = _distinct_rows(arr[finite]) if finite.any() else 0
    return {
        "n": int(arr.shape[0]), "nan": int((~finite).sum()),
        "zero": int((norms == 0).sum()), "duplicates": int(finite.sum() - unique),
        "norm": {"min": float(norms.min()), "mean": float(norms.mean()),
                 "max": float(norms.max()), "std": float(norms.std())} if norms.size else None,
    }


def _distinct_rows(rows: np.ndarray) -> int:
    """How many distinct rows (equal values; -0.0 equals 0.0), each row compared as one
    opaque value: ``np.unique(axis=0)`` sorts row by row lexicographically, 10x slower."""
    rows = np.ascontiguousarray(rows + 0.0)  # + 0.0 turns -0.0 into 0.0
    return int(np.unique(rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))))
               .shape[0])


def cosines(before: dict[str, np.ndarray], now: dict[str, np.ndarray]) -> list[float]:
    """Cosine of each id's vector now against before, over the ids both have; vectors of
    another dimension count as cosine 0 (the pipeline changed), a zero or non-finite
    vector as 1 when it is unchanged and 0 otherwise (so an unchanged one is never reported
    as moved)."""
    shared = [i for i in now if i in before]
    if not shared:
        return []
    a = np.stack([before[i] for i in shared]).astype(np.float64)
    b = np.stack([now[i] for i in shared]).astype(np.float64)
    if a.shape[1] != b.shape[1]:
        return [0.0] * len(shared)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore"):  # inf / inf: such a row takes the bitwise answer
        cos = np.sum(a * b, axis=1) / np.maximum(norms, 1e-30)
    # a zero or non-finite vector has no direction: unchanged (equal bit for bit, NaN
    # equal to NaN) it is 1, else 0
    unchanged = np.all((a == b) | (np.isnan(a) & np.isnan(b)), axis=1)
    values: list[float] = np.where(np.isfinite(norms) & (norms > 0), cos, unchanged).tolist()
    return values


def config_digest(desc: Description) -> str:
    """The index configuration without what changes on every rewrite of the same index."""
    params = {k: v for k, v in desc.params.items() if "mtime" not in k}
    data = [desc.engine, desc.dimension, desc.metric, desc.id_type, params]
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def target_details(desc: Description) -> dict[str, Any]:
    return {"engine": desc.engine, "engine_version": desc.engine_version,
            "dimension": desc.dimension, "metric": desc.metric, "count": desc.count,
            "id_type": desc.id_type, "params": desc.params, "fingerprint": desc.fingerprint(),
            "config_digest": config_digest(desc)}


def mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0
