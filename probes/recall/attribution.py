"""One verdict per recall run, from the evidence the run gathered (see docs/recall.md).

In order (the first that applies wins):

1. ``embedding``: vectors of unchanged golden queries differ from the baseline's, the
   canary of the embedder reports a change (a recent run of the current fingerprint, or
   the inline check), or the embedder fingerprint changed.
2. ``content``: a golden document is missing, or its stored vector changed (unless the index
   configuration changed and *every* golden vector moved: a rebuild with quantization).
3. ``index``: ANN-vs-exact recall dropped (paired) or is below the floor, or live search
   returned fewer than k at any k (shortfall, its likely cause named), or the index
   configuration changed and only live labelled recall dropped.
4. ``inconclusive``: labelled recall dropped significantly and nothing above explains it.
5. ``golden-set-changed``: the golden set is not the baseline's version, nothing else moved
   on the queries both share unchanged; the reasons list the edits.
6. ``healthy``: none of the above.

The order is the order of the table: the query pipeline first (it moves every query),
then the documents, then the index. The evidence behind a verdict is kept with it, so a
reader can disagree with the rule.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ragmon.probes.recall.golden_diff import describe, name_list

#: Why the default ``fidelity_floor`` is where it is (docs/recall.md has the measurements).
FLOOR_NOTE = ("HNSW and IVF indexes with sane parameters reach 0.93 to 1.0; lower it for a "
              "quantized index you accept, with fidelity_floor")

VERDICTS = ("healthy", "index", "embedding", "content", "golden-set-changed", "inconclusive")


@dataclass
class Evidence:
    baseline: bool = False
    golden_changed: bool = False
    live_drop: bool = False
    exact_drop: bool = False
    fidelity_measurable: bool = True
    fidelity: float | None = None
    fidelity_baseline: float | None = None
    fidelity_drop: bool = False
    #: The confidence interval of ``fidelity`` (the point itself when every query had
    #: ground truth) and how many of how many queries it was measured on.
    fidelity_lower: float | None = None
    fidelity_upper: float | None = None
    fidelity_queries: int = 0
    fidelity_total: int = 0
    fidelity_floor: float = 0.9
    fidelity_k: int = 10
    shortfall_ratio: float = 0.0  # at shortfall_k, the largest k any query came back short at
    shortfall_k: int | None = None
    shortfall_cause: str = "filtering, dead tuples or a result-size cap"
    docs_total: int = 0
    docs_missing: int = 0
    docs_missing_ids: list[str] = field(default_factory=list)  # the first NAMED, sorted
    docs_compared: int = 0
    docs_changed: int = 0
    docs_changed_ids: list[str] = field(default_factory=list)  # the first NAMED, sorted
    index_config_changed: bool = False
    queries_compared: int = 0
    query_vectors_changed: int = 0
    query_min_cosine: float | None = None
    embedder_changed: bool = False
    canary_changed: bool | None = None
    #: What the canary evidence is: a recent run, an inline check or unavailable
    #: (:mod:`probes.recall.canary_check`).
    canary: dict[str, Any] | None = None
    #: The golden set edits since the baseline's version (:mod:`probes.recall.golden_diff`).
    golden_diff: dict[str, Any] | None = None
    queries_failed: int = 0


@dataclass
class Attribution:
    verdict: str
    reasons: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    #: Other causes that matched too (verdict -> reasons): two things can break at once.
    also: dict[str, list[str]] = field(default_factory=dict)


def attribute(ev: Evidence) -> Attribution:
    """The verdict for ``ev`` with the reasons that decided it, and any other cause seen."""
    causes = [(name, found(ev)) for name, found in
              (("embedding", _embedding), ("content", _content), ("index", _index))]
    matched = [(name, reasons) for name, reasons in causes if reasons]
    if matched:
        (name, reasons), *others = matched
        result = _verdict(name, reasons, ev)
        result.also = dict(others)
        return result
    if ev.live_drop or ev.exact_drop:
        modes = " and ".join(m for m, d in (("live", ev.live_drop), ("exact", ev.exact_drop)) if d)
        reasons = [f"labelled recall dropped significantly ({modes} search) but the index "
                   "fidelity, the golden documents and the embedding pipeline look unchanged"]
        if ev.queries_failed:
            reasons.append(f"{ev.queries_failed} queries failed or timed out and score 0; "
                           "their rows hold the errors")
        return _verdict("inconclusive", reasons, ev)
    if ev.golden_changed:
        return _verdict("golden-set-changed", [_golden_reason(ev)], ev)
    return _verdict("healthy", [], ev)


def _verdict(name: str, reasons: list[str], ev: Evidence) -> Attribution:
    return Attribution(name, reasons, asdict(ev))


def _golden_reason(ev: Evidence) -> str:
    if ev.golden_diff is None:
        return ("the golden set is not the baseline's version (that version is no longer "
                "stored, so queries are paired by id and judgments); the queries both "
                "versions share did not regress")
    shared = ev.golden_diff["unchanged"]
    return (f"the golden set changed since the baseline's version: "
            f"{describe(ev.golden_diff)}; the {shared} unchanged queries did not regress")


def _canary_reason(canary: dict[str, Any]) -> str:
    probe = canary.get("probe")
    if canary.get("source") == "inline":
        what = canary.get("message") or f"lowest cosine {canary.get('cosine_min'):.4f}"
        return (f"the canary texts of probe {probe!r}, embedded by this run, differ from the "
                f"canary's reference ({what})")
    return (f"the canary probe {probe!r} reports a changed pipeline (run "
            f"{canary.get('run_id')}, finished {canary.get('finished_at')})")


def _drop_note(ev: Evidence) -> str:
    if ev.live_drop or ev.exact_drop:
        return "; labelled recall dropped"
    return "; labelled recall has not dropped (yet)" if ev.baseline else ""


def _embedding(ev: Evidence) -> list[str]:
    out = []
    if ev.query_vectors_changed:
        out.append(
            f"{ev.query_vectors_changed} of {ev.queries_compared} golden query vectors differ "
            f"from the baseline's (lowest cosine {ev.query_min_cosine:.4f}): the query "
            "embedding pipeline changed (model, version, normalisation or truncation)"
        )
    if ev.canary_changed:
        out.append(_canary_reason(ev.canary or {}))
    if ev.embedder_changed:
        out.append("the embedder's fingerprint differs from the baseline run's")
    if out:
        out[-1] += _drop_note(ev)
    return out


#: Share of golden documents whose stored vectors moved at an index configuration change
#: above which the move is read as the rebuild re-encoding them, not as content edits.
REQUANTIZED_SHARE = 0.9


def _content(ev: Evidence) -> list[str]:
    out = []
    if ev.docs_missing:
        out.append(f"{ev.docs_missing} of {ev.docs_total} golden documents are missing from "
                   "the index (deleted, or ingested under another id)"
                   + _names(ev.docs_missing_ids, ev.docs_missing))
    # A quantizing rebuild moves (nearly) every stored vector: a vector alone in its list
    # decodes exactly, so "all moved" would call a rebuild content rot.
    requantized = (ev.index_config_changed
                   and ev.docs_changed >= REQUANTIZED_SHARE * ev.docs_compared)
    if ev.docs_changed and not requantized:
        out.append(f"{ev.docs_changed} of {ev.docs_compared} golden documents have a stored "
                   "vector that differs from the baseline's (edited or re-ingested)"
                   + _names(ev.docs_changed_ids, ev.docs_changed))
    return out


def _names(ids: list[str], total: int) -> str:
    return f": {name_list(ids, total)}" if ids else ""


def _upper(ev: Evidence) -> float:
    """The fidelity's upper bound: below the floor means significantly below it."""
    return ev.fidelity_upper if ev.fidelity_upper is not None else ev.fidelity or 0.0


def _subset(ev: Evidence) -> str:
    if ev.fidelity_queries >= ev.fidelity_total or ev.fidelity_lower is None:
        return ""
    return (f" (on {ev.fidelity_queries} of {ev.fidelity_total} queries, interval "
            f"{ev.fidelity_lower:.3f}..{ev.fidelity_upper:.3f})")


def _index(ev: Evidence) -> list[str]:
    out = []
    if ev.fidelity_drop:
        how = "paired" if not _subset(ev) else "significant at the subset sizes"
        out.append(f"ANN-vs-exact recall fell from {ev.fidelity_baseline:.3f} to "
                   f"{ev.fidelity:.3f}{_subset(ev)} ({how})")
    elif ev.fidelity is not None and _upper(ev) < ev.fidelity_floor:
        out.append(f"ANN-vs-exact recall is {ev.fidelity:.3f}{_subset(ev)}, below the floor "
                   f"{ev.fidelity_floor:g} at k={ev.fidelity_k} ({FLOOR_NOTE})")
    if ev.shortfall_ratio > 0:
        asked = "asked" if ev.shortfall_k is None else f"k={ev.shortfall_k}"
        out.append(f"{ev.shortfall_ratio:.0%} of the queries got fewer results than {asked} "
                   f"({ev.shortfall_cause})")
    if not out and ev.index_config_changed and ev.live_drop and not ev.exact_drop:
        out.append("the index configuration changed and live recall dropped while exact "
                   "recall held")
    if out and ev.index_config_changed:
        out.append("the index configuration changed since the baseline")
    if out:
        out[-1] += ("; exact labelled recall dropped too" if ev.exact_drop
                    else "; exact labelled recall held" if ev.baseline else "")
    return out
