"""The ``recall`` probe kind: golden queries against a live vector index.

One run, in phases: load the golden set (versioned by content hash); embed its queries once
(precomputed vectors are used as they are); search live at max(k), and exact for the
queries the ground-truth budget allows (:mod:`probes.recall.truth`); score labelled
relevance per query with trec_eval semantics (:mod:`probes.recall.scoring`); measure index
fidelity, tie-tolerant, with its interval (:mod:`probes.recall.fidelity`); gather causes
(golden documents present and unchanged, query vectors unchanged, canary, index
configuration); compare per query with the baseline run (:mod:`probes.recall.compare`);
and give one verdict (:mod:`probes.recall.attribution`). Everything is stored: values, one
row per query, and the evidence in the run's details.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ragmon.monitor.errors import ConfigError, ConfigIssue, DimensionMismatch, GoldenSetError
from ragmon.monitor.probe import Deadline, MetricSpec, Probe, ProbeResult
from ragmon.monitor.targets.abc import Description, VectorTarget
from ragmon.probes.recall import history, scoring, truth
from ragmon.probes.recall._search import search_all
from ragmon.probes.recall.attribution import attribute
from ragmon.probes.recall.config import RecallConfig
from ragmon.probes.recall.documents import DocumentMap, lift_presence, presence_set
from ragmon.probes.recall.evidence import build_evidence, gather_causes, target_details
from ragmon.probes.recall.golden import GoldenQuery, GoldenSet, check_id_type, load_golden_set

__all__ = ["RecallConfig", "RecallProbe"]

#: Queries embedded per call: the run checks its deadline (and a stopping daemon) between.
EMBED_CHUNK = 256


def _spec(help: str, *labels: str) -> MetricSpec:
    return MetricSpec(help, labels)


class RecallProbe(Probe):
    kind = "recall"
    Config = RecallConfig
    METRICS = {
        "recall_ratio": _spec("Mean recall@k over the golden queries.", "k", "mode"),
        "precision_ratio": _spec("Mean precision@k over the golden queries.", "k", "mode"),
        "hit_rate_ratio": _spec("Share of golden queries with a relevant document in the top k.",
                                "k", "mode"),
        "mrr_ratio": _spec("Mean reciprocal rank of the first relevant document.", "mode"),
        "ndcg_ratio": _spec("Mean nDCG@k (IDCG over all judged documents).", "k", "mode"),
        "index_fidelity_ratio": _spec("Tie-tolerant recall of the live top k against the exact "
                                      "top k, mean over the queries with ground truth.", "k"),
        "index_fidelity_lower_ratio": _spec("Lower bound of the confidence interval (1 - "
                                            "alpha) of the index fidelity; equal to it when "
                                            "every query had ground truth.", "k"),
        "index_fidelity_upper_ratio": _spec("Upper bound of the confidence interval (1 - "
                                            "alpha) of the index fidelity.", "k"),
        "ground_truth_queries": _spec("Golden queries whose ground truth (exact search) was "
                                      "measured this run."),
        "ground_truth_skipped_total": _spec("Runs whose ground truth was not measured, by "
                                            "reason (budget: exact_budget; error: the exact "
                                            "search failed).", "reason"),
        "index_shortfall_ratio": _spec("Share of queries whose live search returned fewer than "
                                       "k results.", "k"),
        "document_shortfall_ratio": _spec("Share of queries whose live chunks, searched up to "
                                          "documents.max_depth x k deep, held fewer than k "
                                          "distinct documents.", "k"),
        "chunk_recall_ratio": _spec("Mean chunk-level recall@k (judged chunk ids, before "
                                    "collapsing to documents).", "k", "mode"),
        "chunk_ndcg_ratio": _spec("Mean chunk-level nDCG@k (judged chunk ids).", "k", "mode"),
        "recall_drop_significant": _spec("1 when live recall@k dropped significantly against "
                                         "the baseline (paired tests).", "k"),
        "recall_delta_ratio": _spec("Mean per-query live recall@k difference against the "
                                    "baseline.", "k"),
        "recall_verdict": _spec("1 for the run's verdict, 0 for the others.", "verdict"),
        "recall_verdict_k": _spec("The k the verdict is decided at (`verdict_k`), as its "
                                  "value and its k label: per-k alert rules join on it.", "k"),
        "golden_docs_missing_ratio": _spec("Share of golden relevant documents not in the "
                                           "index."),
        "golden_docs_changed_ratio": _spec("Share of golden documents whose stored vector "
                                           "differs from the baseline's."),
        "golden_queries": _spec("Number of golden queries in the run."),
        "golden_queries_failed_ratio": _spec("Share of golden queries that failed or timed out "
                                             "(they score 0)."),
        "index_vectors": _spec("Number of vectors in the index."),
        "search_latency_seconds": _spec("Live search latency per query: p50, p95 and max.",
                                        "stat"),
    }

    def __init__(self, name: str, config: Any, context: Any):
        super().__init__(name, config, context)
        # the parsed golden set, reused while its files are unchanged (stat stamp)
        self._golden_cache: tuple[tuple[Any, ...], GoldenSet] | None = None

    # -- phases ----------------------------------------------------------------------------

    def _golden(self) -> tuple[GoldenSet, str | None]:
        cfg: RecallConfig = self.config
        sets = self.context.config.golden_sets
        if cfg.golden_set not in sets:
            valid = ", ".join(sorted(sets)) or "none are configured"
            raise ConfigError([ConfigIssue(
                getattr(self.context.config, "source", "config"),
                f"probes.{self.name}.golden_set",
                f"no golden set named {cfg.golden_set!r}; valid golden sets: {valid}")])
        gs_config = sets[cfg.golden_set]
        store = self.context.store
        try:
            stamp = _file_stamp(gs_config)
            if self._golden_cache is not None and self._golden_cache[0] == stamp:
                return self._golden_cache[1], None
            golden = load_golden_set(cfg.golden_set, gs_config)
        except GoldenSetError as exc:
            last = history.last_good_golden(store, cfg.golden_set) \
                if gs_config.keep_last_good else None
            if last is None:
                raise
            return last, f"{exc}; using the last good version {last.version}"
        history.remember_golden(store, golden)
        self._golden_cache = (stamp, golden)
        return golden, None

    def _embed(
        self, golden: GoldenSet, desc: Description, target: VectorTarget, deadline: Deadline
    ) -> tuple[np.ndarray | None, str | None]:
        """Query vectors, one row per golden query (None: a text-input target and no
        embedder, so the engine embeds the texts itself and nothing is compared by vector)."""
        queries = golden.queries
        need = [i for i, q in enumerate(queries) if q.vector is None]
        dim = desc.dimension or None  # 0: the target does not know (an HTTP endpoint)
        fingerprint = None
        encoded = None
        if need:
            try:
                _, embedder = self.context.embedder_for(self.config)
            except ValueError as exc:
                if target.query_input == "text" and len(need) == len(queries):
                    return None, None
                raise GoldenSetError(golden.source, None, f"queries have text but {exc}; "
                                     "set 'embedder' on the probe or its target") from None
            texts = [_text(golden, queries[i]) for i in need]
            parts = []
            for start in range(0, len(texts), EMBED_CHUNK):  # a stop or timeout between chunks
                deadline.check("embedding queries")
                parts.append(embedder.encode(texts[start:start + EMBED_CHUNK]))
            encoded = np.concatenate(parts)
            fingerprint = embedder.fingerprint_id()
            if dim is not None and encoded.shape[1] != dim:
                raise DimensionMismatch(self.config.target, encoded.shape[1], dim)
            dim = encoded.shape[1]
        for q in queries:
            if q.vector is not None:
                dim = dim or len(q.vector)
                if len(q.vector) != dim:
                    raise GoldenSetError(golden.source, q.line, f"query {q.id!r} has a vector "
                                         f"of dimension {len(q.vector)}; the index has {dim}")
        out = np.zeros((len(queries), dim or 1), dtype=np.float32)
        if encoded is not None:
            out[need] = encoded
        given, matrix = golden.given_vectors()
        if given:
            out[given] = matrix
        return out, fingerprint

    def run(self, deadline: Deadline) -> ProbeResult:
        golden, golden_note = self._golden()
        target = self.context.target(self.config.target)
        with target.pinned():  # one version of the index for every step of the run
            return self._run(target, golden, golden_note, deadline)

    def _run(self, target: VectorTarget, golden: GoldenSet, golden_note: str | None,
             deadline: Deadline) -> ProbeResult:
        cfg: RecallConfig = self.config
        desc = target.describe()
        docs = DocumentMap(cfg.documents) if cfg.documents is not None else None
        if docs is not None:  # judged chunks map to their documents before any search
            docs.resolve(target, {i for q in golden.queries for i in q.relevant})
        chunks = golden if docs is None else _judged_chunks(golden, docs)
        check_id_type(chunks, desc.id_type, cfg.target)
        vectors, emb_fp = self._embed(golden, desc, target, deadline)
        deadline.check("embedding")
        searched, qvec = search_all(target, golden.queries, vectors, max(cfg.k),
                                    cfg.search_batch, deadline, docs)
        gt = truth.measure(self.name, cfg, self.context.store, target, desc, golden, qvec,
                           searched, deadline, docs)
        rows = scoring.score(cfg, golden, searched, docs)
        fid_note = truth.fill_fidelity(cfg, target, desc, golden, vectors, searched, rows)
        if fid_note:
            gt.notes.append(fid_note)
        result = ProbeResult(target=cfg.target, golden_version=golden.version,
                             embedder_fingerprint=emb_fp, target_fingerprint=desc.fingerprint())
        baseline = history.find_baseline(self.context.store, self.name, golden.version)
        causes = self._causes(target, desc, golden, chunks, docs, rows, baseline, vectors,
                              emb_fp)
        evidence, comparisons = build_evidence(cfg, self.context.store, baseline, rows, causes,
                                               emb_fp, desc, golden)
        attribution = attribute(evidence)
        scoring.add_values(cfg, result, golden, searched, rows, causes, comparisons,
                           desc, evidence, attribution.verdict)
        truth.add_values(cfg, result, rows, gt)
        result.queries = [(q.id, rows[q.id]["status"], rows[q.id]) for q in golden.queries]
        result.details = {
            "verdict": attribution.verdict, "reasons": attribution.reasons,
            "also": attribution.also,
            "evidence": attribution.evidence,
            "golden": {"name": golden.name, "version": golden.version, "source": golden.source,
                       "queries": len(golden.queries), "note": golden_note},
            "target": target_details(desc),
            "fidelity": gt.details(),
            "causes": {k: v for k, v in causes.items() if k not in ("doc_vectors", "chunk_docs")},
            "references": causes["references"],
            "reference_from_instance": None if baseline is None else baseline.from_instance,
            "baseline": None if baseline is None else {
                "run_id": baseline.run.id, "how": baseline.how,
                "golden_version": baseline.run.golden_version,
                "started_at": baseline.run.started_at.isoformat()},
            "comparisons": [c.summary() for c in comparisons.values()],
            "regressed": _top(comparisons, "regressed", cfg, golden),
            "improved": _top(comparisons, "improved", cfg, golden),
            "k": cfg.k, "verdict_k": cfg.decision_k,
            "level": "chunk" if docs is None else "document",
            "documents": None if docs is None else {
                "mapping": docs.describe(), "max_depth": cfg.documents.max_depth,  # type: ignore[union-attr]
                "chunk_level": any("recall" in r["chunks"]["live"] for r in rows.values())},
        }
        return result

    def _causes(
        self, target: VectorTarget, desc: Description, golden: GoldenSet, chunks: GoldenSet,
        docs: DocumentMap | None, rows: dict[str, Any], baseline: history.Baseline | None,
        vectors: np.ndarray | None, emb_fp: str | None,
    ) -> dict[str, Any]:
        """Presence and vectors are checked on the chunk ids a golden set names and, for the
        documents it names, on their chunks that this run's and the baseline's searches
        returned (:func:`~ragmon.probes.recall.documents.presence_set`)."""
        if docs is None:
            return gather_causes(self.name, self.config, self.context, target, chunks, vectors,
                                 emb_fp, desc)
        checked, remembered = presence_set(golden, chunks, docs, rows,
                                           None if baseline is None else baseline.rows)
        causes = gather_causes(self.name, self.config, self.context, target, checked, vectors,
                               emb_fp, desc)
        lift_presence(causes, golden, chunks, docs, remembered)
        return causes

    def render(self, result: ProbeResult) -> str:
        from ragmon.probes.recall.render import render

        return render(self.name, result, self.target_name)


# -- helpers -------------------------------------------------------------------------------

def _file_stamp(gs_config: Any) -> tuple[Any, ...]:
    """(mtime, size, inode) of every file a golden set is read from; a GoldenSetError when
    one is gone, so a vanished file is reported, never served from the cache."""
    path = Path(gs_config.path)
    files = [path]
    if gs_config.format == "beir":
        files = [path / "queries.jsonl", path / "qrels" / f"{gs_config.split}.tsv"]
    elif gs_config.queries is not None:
        files.append(Path(gs_config.queries))
    stamp: list[Any] = [gs_config.format, gs_config.split]
    for file in files:
        try:
            st = file.stat()
        except OSError:
            raise GoldenSetError(str(file), None, "file not found") from None
        stamp.append((str(file), st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(stamp)


def _text(golden: GoldenSet, query: GoldenQuery) -> str:
    """The text to embed of a query without a vector (a golden query has one or the other)."""
    if query.text is None:
        raise GoldenSetError(golden.source, query.line,
                             f"query {query.id!r} needs 'query' (text) or 'vector'")
    return query.text


def _judged_chunks(golden: GoldenSet, docs: DocumentMap) -> GoldenSet:
    """The golden set restricted to the judgments that name chunk ids (same name and
    version): what the index can be asked about. Judged document ids are not index keys."""
    queries = [GoldenQuery(q.id, docs.judged_chunks(q.relevant), q.text, q.vector, q.filter,
                           q.tags, q.line) for q in golden.queries]
    return GoldenSet(golden.name, golden.source, queries, golden.version)


def _top(comparisons: dict[str, Any], side: str, cfg: RecallConfig,
         golden: GoldenSet) -> list[dict[str, Any]]:
    """The queries that changed most at the verdict k, each with its full text (``query``;
    None for a query given as a vector), so notifications can quote it."""
    c = comparisons.get(f"live@{cfg.decision_k}")
    if c is None:
        return []
    texts = {q.id: q.text for q in golden.queries}
    return [{**r, "query": texts.get(r["query_id"])}
            for r in getattr(c, side)[: cfg.report_queries]]
