"""The recall part of the report: trends of recall@k, nDCG and MRR (live and exact), index
fidelity and latency against the previous period, the queries that regressed most, and the
period's attribution verdicts."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ragmon.alerts.report.blocks import Para, Section, Table
from ragmon.alerts.report.build import ProbeHistory, Run
from ragmon.alerts.report.charts import Series, trend
from ragmon.alerts.report.findings import (
    CHANGE,
    RECALL_DROP,
    RECALL_VERDICT,
    STEADY,
    Finding,
    delta,
    fmt,
    mean,
    when,
)
from ragmon.monitor.store import Store

#: Verdicts that say nothing is wrong (a golden set edit is news, not a fault).
FINE = ("healthy", "golden-set-changed")
#: A period mean this much below the previous period's is worth the headline.
NOTABLE_DROP = 0.02
TOP_QUERIES = 5
#: Lines per chart when sidecars each have their own history.
MAX_LINES = 6
CAUSES = {"index": "the index (ANN vs exact recall fell)",
          "embedding": "the embedding model or query pipeline",
          "content": "content (golden documents deleted or re-ingested)",
          "inconclusive": "no single cause (inconclusive)"}


def verdict_k(p: ProbeHistory) -> int | None:
    for run in reversed(p.ok):
        k = run.details.get("verdict_k")
        if k is not None:
            return int(k)
    return None


def points(runs: list[Run], name: str, **labels: Any) -> list[tuple[Any, float]]:
    return [(r.started_at, v) for r in runs if (v := r.value(name, **labels)) is not None]


def period_mean(runs: list[Run], name: str, **labels: Any) -> float | None:
    return mean([v for _, v in points(runs, name, **labels)])


def recall_section(store: Store, p: ProbeHistory,
                   texts: dict[str, dict[str, str]]) -> tuple[Section, list[Finding]]:
    """One recall probe's section and findings (``texts``: golden version -> id -> text)."""
    section = Section(f"Recall: {p.name}", slug=f"recall-{p.name}")
    k = verdict_k(p)
    if k is None:
        section.add(Para(f"No successful run of {p.name} in this period to read recall from.",
                         "bad" if p.runs else "muted"))
        return section, []
    level = p.ok[-1].details.get("level", "chunk")
    section.add(Para(f"Target {p.target}; {len(p.ok)} of {len(p.runs)} runs succeeded; "
                     f"metrics at {level} "
                     f"level, decided at k={k}. Numbers: this period's mean (previous period's "
                     "mean, change).", "muted"))
    findings: list[Finding] = []
    section.add(*metric_charts(p, k))
    section.add(metric_table(p, k))
    drop = _drop(p, k)
    if drop is not None:
        findings.append(drop)
    regress = regressions(store, p, k, texts)
    section.add(*regress)
    blocks, verdict = verdicts(p)
    section.add(*blocks)
    if verdict is not None:
        findings.append(verdict)
    if not findings:
        now = period_mean(p.ok, "recall_ratio", k=k, mode="live")
        findings.append(Finding(STEADY, f"live recall@{k} of {p.name} held at {fmt(now)}."))
    return section, findings


def lines(p: ProbeHistory, name: str, **labels: Any) -> tuple[list[Series], str]:
    """The chart lines of a metric: live and exact; with several sidecars, live per
    instance (the ``MAX_LINES`` lowest), and a note naming the lowest instance."""
    instances = p.instances
    if len(instances) == 1:
        return [Series(mode, points(p.ok, name, mode=mode, **labels), dashed=mode == "exact")
                for mode in ("live", "exact")], ""
    means = {i: period_mean(p.of(i), name, mode="live", **labels) for i in instances}
    ranked = sorted((m, i) for i, m in means.items() if m is not None)
    shown = [i for _, i in ranked[:MAX_LINES]]
    note = ""
    if ranked:
        note = (f"; {len(instances)} instances, lowest {ranked[0][1]} at {ranked[0][0]:.3f}"
                + (f" (the {len(shown)} lowest drawn)" if len(ranked) > len(shown) else ""))
    return [Series(i, points(p.of(i), name, mode="live", **labels)) for i in shown], note


def metric_charts(p: ProbeHistory, k: int) -> list[Any]:
    charts = []
    for title, name, labelled in (
            (f"recall@{k}", "recall_ratio", True), (f"nDCG@{k}", "ndcg_ratio", True),
            ("MRR", "mrr_ratio", False)):
        extra = {"k": k} if labelled else {}
        series, note = lines(p, name, **extra)
        parts = []
        for mode in ("live", "exact"):
            now = period_mean(p.ok, name, mode=mode, **extra)
            if now is not None:
                before = period_mean(p.previous, name, mode=mode, **extra)
                parts.append(f"{mode} {delta(now, before)}")
        live = points(p.ok, name, mode="live", **extra)
        if len(live) > 1:
            low = min(live, key=lambda x: x[1])
            parts.append(f"live low {low[1]:.3f} on {when(low[0])}")
        summary = f"{title} of {p.name}: " + "; ".join(parts) + note + "."
        charts.append(trend(f"{title} - {p.name}", series, summary, unit_range=True,
                            span=p.span))
    fid = points(p.ok, "index_fidelity_ratio", k=k)
    if fid:
        summary = (f"index fidelity@{k} (ANN vs exact) of {p.name}: "
                   f"{delta(mean([v for _, v in fid]), period_mean(p.previous, 'index_fidelity_ratio', k=k))}; "  # noqa: E501
                   f"lowest {min(v for _, v in fid):.3f}.")
        fid_lines = [Series(i or "fidelity", points(p.of(i), "index_fidelity_ratio", k=k))
                     for i in p.instances[:MAX_LINES]]
        charts.append(trend(f"index fidelity@{k} - {p.name}", fid_lines, summary,
                            unit_range=True, span=p.span))
    return charts


def metric_table(p: ProbeHistory, k: int) -> Table:
    rows = []
    specs: list[tuple[str, str, dict[str, Any]]] = [
        (f"recall@{k} live", "recall_ratio", {"k": k, "mode": "live"}),
        (f"recall@{k} exact", "recall_ratio", {"k": k, "mode": "exact"}),
        (f"nDCG@{k} live", "ndcg_ratio", {"k": k, "mode": "live"}),
        ("MRR live", "mrr_ratio", {"mode": "live"}),
        (f"index fidelity@{k}", "index_fidelity_ratio", {"k": k}),
        (f"shortfall@{k}", "index_shortfall_ratio", {"k": k}),
    ]
    if p.ok[-1].details.get("level") == "document":
        specs += [(f"chunk recall@{k} live", "chunk_recall_ratio", {"k": k, "mode": "live"}),
                  (f"document shortfall@{k}", "document_shortfall_ratio", {"k": k})]
    for label, name, labels in specs:
        now = period_mean(p.ok, name, **labels)
        if now is None:
            continue
        rows.append([label, delta(now, period_mean(p.previous, name, **labels)),
                     fmt(p.ok[-1].value(name, **labels))])
    p95 = [v * 1000 for _, v in points(p.ok, "search_latency_seconds", stat="p95")]
    if p95:
        before = [v * 1000 for _, v in points(p.previous, "search_latency_seconds", stat="p95")]
        rows.append(["latency p95 (ms)", delta(mean(p95), mean(before), 2),
                     f"{p95[-1]:.2f}"])
    return Table(["metric", "mean (previous, change)", "last run"], rows, nowrap=(0, 1, 2))


def _drop(p: ProbeHistory, k: int) -> Finding | None:
    now = period_mean(p.ok, "recall_ratio", k=k, mode="live")
    before = period_mean(p.previous, "recall_ratio", k=k, mode="live")
    if now is None or before is None or before - now < NOTABLE_DROP:
        return None
    return Finding(RECALL_DROP, f"live recall@{k} of {p.name} fell from {before:.3f} to "
                   f"{now:.3f} on average against the previous period.", problem=True)


def regressions(store: Store, p: ProbeHistory, k: int,
                texts: dict[str, dict[str, str]]) -> list[Any]:
    """The queries whose live recall@k fell most: the period's worst run (lowest mean live
    recall@k) against the last successful run before the period (else the period's first),
    with where each query stands at the period's end."""
    worst = min(p.ok, key=lambda r: (r.value("recall_ratio", k=k, mode="live") or 0.0,
                                     -r.started_at.timestamp()))
    # compared within one history: a sidecar's worst run with that sidecar's runs
    before_run = next(iter(reversed(p.of(worst.instance, previous=True))),
                      p.of(worst.instance)[0])
    if before_run.id == worst.id:
        return [Para("Regressions: the period's worst run is the first of its history; there "
                     "is no earlier run to compare it with.", "muted")]
    before = {q.query_id: q.data for q in store.query_results(before_run.id)}
    at_worst = {q.query_id: q.data for q in store.query_results(worst.id)}
    last = {q.query_id: q.data for q in store.query_results(p.of(worst.instance)[-1].id)}
    moved = []
    for qid, data in at_worst.items():
        if qid in before and _recall(data, k) < _recall(before[qid], k):
            moved.append((_recall(data, k) - _recall(before[qid], k), qid))
    moved.sort()
    where = f" on {worst.instance}" if len(p.instances) > 1 else ""
    head = (f"Regressions: the period's lowest live recall@{k} was run {worst.id}{where} "
            f"({when(worst.started_at)}), against run {before_run.id} "
            f"({when(before_run.started_at)}): {len(moved)} of {len(at_worst)} queries fell.")
    if not moved:
        return [Para(head, "good")]
    names = texts.get(worst.golden_version or "", {})
    rows = [[f"{qid} {_quote(names.get(qid))}".strip(),
             f"{_recall(before[qid], k):.2f} -> {_recall(at_worst[qid], k):.2f}"
             + (f" (now {_recall(last[qid], k):.2f})" if qid in last else ""),
             ranks(before[qid]) + " -> " + ranks(at_worst[qid])]
            for _, qid in moved[:TOP_QUERIES]]
    return [Para(head), Table(["query", f"recall@{k} before -> worst (now)",
                               "relevant ranks before -> worst"], rows)]


def _recall(data: dict[str, Any], k: int) -> float:
    return float((data.get("live") or {}).get("recall", {}).get(str(k), 0.0))


def ranks(data: dict[str, Any]) -> str:
    found = (data.get("live") or {}).get("relevant_ranks") or {}
    if not found:
        return "none in top k"
    return ", ".join(f"{doc}@{rank}" for doc, rank in
                     sorted(found.items(), key=lambda x: x[1])[:3])


def _quote(text: str | None, width: int = 70) -> str:
    if not text:
        return ""
    one = " ".join(text.split())
    return '"' + (one if len(one) <= width else one[: width - 3] + "...") + '"'


def verdicts(p: ProbeHistory) -> tuple[list[Any], Finding | None]:
    """The period's attribution verdicts, counted, with the reasons of each fault."""
    counts = Counter(str(r.details.get("verdict")) for r in p.ok if r.details.get("verdict"))
    if not counts:
        return [], None
    text = ", ".join(f"{v} x{n}" for v, n in counts.most_common())
    blocks: list[Any] = [Para(f"Verdicts this period: {text}.")]
    finding = None
    for verdict in counts:
        if verdict in FINE:
            continue
        runs = [r for r in p.ok if r.details.get("verdict") == verdict]
        first, last = runs[0], runs[-1]
        reasons = "; ".join(str(x) for x in (last.details.get("reasons") or [])[:3])
        blocks.append(Para(f"{verdict}: first on {when(first.started_at)}, last on "
                           f"{when(last.started_at)}" + (f" - {reasons}" if reasons else ""),
                           "bad"))
    latest = {i: runs[-1] for i in p.instances if (runs := p.of(i))}
    faulty = {i: str(r.details["verdict"]) for i, r in latest.items()
              if r.details.get("verdict") not in (*FINE, None)}
    faults = [r for r in p.ok if r.details.get("verdict") not in (*FINE, None)]
    if faulty:
        verdict = Counter(faulty.values()).most_common(1)[0][0]
        first = next(r for r in p.ok if r.details.get("verdict") == verdict)
        where = "" if len(latest) == 1 else (
            f" on {len(faulty)} of {len(latest)} instances ({', '.join(sorted(faulty)[:3])}"
            + (", ..." if len(faulty) > 3 else "") + ")")
        finding = Finding(RECALL_VERDICT, f"{p.name}: recall is degraded{where}, attributed "
                          f"to {CAUSES.get(verdict, verdict)}, since {when(first.started_at)}.",
                          problem=True)
    elif faults:
        cause = CAUSES.get(str(faults[0].details["verdict"]), "a fault")
        finding = Finding(CHANGE, f"{p.name}: recall was degraded by {cause} from "
                          f"{when(faults[0].started_at)} to {when(faults[-1].started_at)}, "
                          "and has recovered since.")
    return blocks, finding


__all__ = ["recall_section"]
