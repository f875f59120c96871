"""Ground truth and index fidelity of one recall run.

:func:`measure` plans which queries get ground truth (:mod:`probes.recall.groundtruth`),
runs the exact side (:func:`probes.recall._search.exact_all`) and says what it did: a note
for the report when fidelity is not measured (no exact search, an always-exact engine mode,
a budget or an error), when it is measured on a subset, or against decoded vectors.
:func:`fill_fidelity` scores each measured query; :func:`add_values` exports the mean with
its confidence interval, how many queries had ground truth and the skip counter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ragmon.monitor.probe import Deadline, ProbeResult
from ragmon.monitor.targets.abc import Description, VectorTarget
from ragmon.probes.recall._search import Searched, exact_all
from ragmon.probes.recall.config import RecallConfig
from ragmon.probes.recall.documents import DocumentMap
from ragmon.probes.recall.fidelity import StoredVectors, fidelity_rows
from ragmon.probes.recall.golden import GoldenSet
from ragmon.probes.recall.groundtruth import (
    SAFETY,
    SKIP_REASONS,
    choose,
    fidelity_interval,
    plan,
    previous,
)

ALWAYS_EXACT = ("not measurable: this engine mode is always exact (live search is itself a "
                "brute-force scan, so it cannot differ from the exact search)")
DECODED = ("ground truth is the exact top-k over the vectors decoded from the index's codes: "
           "fidelity measures search error only, not quantisation error")
REFERENCE = "ground truth is the exact top-k over the original vectors of the reference source"


@dataclass
class Outcome:
    """What the exact side of a run did, for the run's details, values and report."""

    measurable: bool
    notes: list[str] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    counts: dict[str, float] = field(default_factory=dict)

    def details(self) -> dict[str, Any]:
        return {"measurable": self.measurable, "note": "; ".join(self.notes) or None,
                "notes": self.notes, "ground_truth": self.record or None}


def measure(
    name: str, cfg: RecallConfig, store: Any, target: VectorTarget, desc: Description,
    golden: GoldenSet, vectors: np.ndarray, s: Searched, deadline: Deadline,
    docs: DocumentMap | None,
) -> Outcome:
    """Ground truth for this run's share of the golden set, within ``exact_budget``."""
    prev = previous(store, name)
    counts = {reason: prev.skipped.get(reason, 0.0) for reason in SKIP_REASONS}
    if not target.supports_exact:
        return Outcome(False, ["not measurable: the target has no exact search"],
                       counts=counts)
    if target.always_exact:
        return Outcome(False, [ALWAYS_EXACT], counts=counts)
    n, budget, k = len(golden.queries), cfg.ground_truth_budget, max(cfg.k)
    p = plan(n, golden.version, budget, prev.record, desc.count)
    gt = exact_all(target, golden.queries, vectors, k, p.chosen, budget, deadline, s, docs)
    left = budget - gt.seconds
    if gt.skipped == "budget" and gt.projected and gt.asked and left > 0:
        # the target projected the cost: measure the share that fits in what is left
        per_query = gt.projected / gt.asked
        size = int(left * SAFETY / per_query)
        if 1 <= size < len(p.chosen):
            p = choose(n, golden.version, size, p.rotation, per_query)
            gt = exact_all(target, golden.queries, vectors, k, p.chosen, left, deadline, s,
                           docs)
    out = Outcome(True, counts=counts)
    out.record = {**p.summary(), **gt.summary(), "budget": budget, "count": desc.count,
                  "of": desc.ground_truth_of}
    if gt.skipped is not None:
        out.skipped = gt.skipped
        counts[gt.skipped] = counts.get(gt.skipped, 0.0) + 1
        out.notes.append(f"fidelity not measured this run ({gt.skipped}): {gt.error}")
        return out
    if gt.queries < n:
        out.notes.append(
            f"measured on {gt.queries} of {n} queries (slice {p.slice + 1} of {p.slices}: "
            f"the exact search of all of them would not fit in exact_budget {budget:g}s); "
            "the interval accounts for the subset")
    if desc.ground_truth_of == "decoded":
        out.notes.append(DECODED)
    elif desc.ground_truth_of == "reference":
        out.notes.append(REFERENCE)
    return out


def fill_fidelity(
    cfg: RecallConfig, target: VectorTarget, desc: Description, golden: GoldenSet,
    vectors: np.ndarray | None, s: Searched, rows: dict[str, dict[str, Any]],
) -> str | None:
    """Each measured row's tie-tolerant fidelity; a note when ties cannot be recognised.

    Distances come from the searches' scores when the target says they are the metric's
    own (``Description.scores_are_distances``: an id on the exact side takes the exact
    side's score, so the same vector never counts as two), else from fetched vectors."""
    measured = [i for i in range(len(golden.queries)) if s.truth[i] and s.status[i] == "ok"]
    if not measured:
        return None
    note = None
    fetched: Mapping[str, np.ndarray] = {}
    known: list[dict[str, float]] | None = None
    affine = (1.0, 0.0)
    sides = []
    for i in measured:
        row = rows[golden.queries[i].id]
        chunks = row.get("chunks", row)  # fidelity compares chunks, never documents
        sides.append((chunks["live"]["ids"], chunks["exact"]["ids"]))
    if desc.scores_are_distances and vectors is not None:
        known = [_scores(s, i) for i in measured]
        affine = _SCORE_TO_DISTANCE[desc.metric]
    elif target.supports_fetch and vectors is not None:
        wanted = sorted({d for live, exact in sides for d in (*live, *exact)})
        got = target.fetch(wanted)
        fetched = StoredVectors(got.ids, got.vectors)
    else:
        note = ("approximate: without fetched vectors and query vectors, ties are not "
                "recognised (plain id overlap)")
    dim = 1 if vectors is None else vectors.shape[1]
    queries = np.zeros((len(measured), dim)) if vectors is None else vectors[measured]
    for i, fid in zip(measured, fidelity_rows(
            queries, sides, fetched, desc.metric, cfg.k, cfg.fidelity_epsilon,
            target.cosine_ranking, known, affine), strict=True):
        rows[golden.queries[i].id]["fidelity"] = fid
    return note


#: (sign, offset): distance = offset + sign * score, for a target whose scores are
#: distances (squared L2; inner product; cosine similarity), in
#: :mod:`probes.recall.fidelity`'s terms.
_SCORE_TO_DISTANCE = {"l2": (1.0, 0.0), "ip": (-1.0, 0.0), "cosine": (-1.0, 1.0)}


def _scores(s: Searched, i: int) -> dict[str, float]:
    """Query i's scores by id, live and exact, the exact side's last (an id on both sides
    takes one value, so the same vector never counts as two)."""
    out = dict(zip(s.live_ids[i], s.live_scores[i], strict=True))
    out.update(zip(s.exact_ids[i], s.exact_scores[i], strict=True))
    return out


def add_values(cfg: RecallConfig, result: ProbeResult, rows: dict[str, dict[str, Any]],
               out: Outcome) -> None:
    """Fidelity at each k with its interval, the queries with ground truth, the skips."""
    measured = [r["fidelity"] for r in rows.values() if "fidelity" in r]
    if measured:
        for k in cfg.k:
            ci = fidelity_interval([f["recall"][str(k)] for f in measured], len(rows),
                                   1.0 - cfg.alpha)
            result.add("index_fidelity_ratio", ci.mean, k=k)
            result.add("index_fidelity_lower_ratio", ci.lower, k=k)
            result.add("index_fidelity_upper_ratio", ci.upper, k=k)
    if out.measurable:
        result.add("ground_truth_queries", len(measured))
    for reason, value in sorted(out.counts.items()):
        result.add("ground_truth_skipped_total", value, reason=reason)
