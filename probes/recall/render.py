"""The compact report ``ragmon probe NAME --once`` prints for a recall run: the metric
table, the change against the baseline and its significance, the verdict with its
evidence, and the queries that regressed most."""

from __future__ import annotations

import shutil
from typing import Any

from ragmon.monitor.probe import ProbeResult
from ragmon.probes.recall.history import ELIGIBLE_VERDICTS


def _values(result: ProbeResult) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(n, tuple(sorted((k, str(v)) for k, v in labels.items()))): v
            for n, labels, v in result.values}


def _get(values: dict[Any, float], name: str, **labels: Any) -> float | None:
    return values.get((name, tuple(sorted((k, str(v)) for k, v in labels.items()))))


def _fmt(value: float | None) -> str:
    return "    -" if value is None else f"{value:5.3f}"


def render(name: str, result: ProbeResult, target: str | None = None) -> str:
    d = result.details
    head = f"recall probe {name} -> target {result.target or target}: {result.status}"
    if result.error:
        return f"{head}\n  error: {result.error}"
    golden = d.get("golden", {})
    lines = [head, f"  golden set {golden.get('name')} version {golden.get('version')} "
                   f"({golden.get('queries')} queries)"]
    if golden.get("note"):
        lines.append(f"  warning: {golden['note']}")
    lines.append(f"  VERDICT: {d.get('verdict')}")
    lines.extend(f"    - {reason}" for reason in d.get("reasons", []))
    for other, reasons in (d.get("also") or {}).items():
        lines.append(f"  also {other}:")
        lines.extend(f"    - {reason}" for reason in reasons)
    lines.extend(_table(result, d))
    lines.extend(_baseline(d))
    lines.extend(_regressed(d))
    return "\n".join(lines)


def _table(result: ProbeResult, d: dict[str, Any]) -> list[str]:
    values = _values(result)
    lines = ["", *_level(values, d),
             "     k | recall live exact | precision live exact | hit rate live exact | "
             "nDCG live exact | fidelity"]
    for k in d.get("k", []):
        cells = []
        for metric in ("recall_ratio", "precision_ratio", "hit_rate_ratio", "ndcg_ratio"):
            cells.append(f"{_fmt(_get(values, metric, k=k, mode='live'))} "
                         f"{_fmt(_get(values, metric, k=k, mode='exact'))}")
        fid = _get(values, "index_fidelity_ratio", k=k)
        lines.append(f"  {k:4d} | {cells[0]:>17} | {cells[1]:>20} | {cells[2]:>19} | "
                     f"{cells[3]:>15} | {_fmt(fid)}")
    lines.append(f"  MRR live {_fmt(_get(values, 'mrr_ratio', mode='live'))}  exact "
                 f"{_fmt(_get(values, 'mrr_ratio', mode='exact'))}")
    fidelity = d.get("fidelity", {})
    notes = fidelity.get("notes") or ([fidelity["note"]] if fidelity.get("note") else [])
    lines.extend(f"  fidelity: {note}" for note in notes)
    lines.extend(_interval(values, d))
    ev = d.get("evidence") or {}
    if ev.get("shortfall_k"):
        lines.append(f"  shortfall at k={ev['shortfall_k']}: {ev['shortfall_ratio']:.0%} of the "
                     f"queries ({ev['shortfall_cause']})")
    quantiles = [(q, _get(values, "search_latency_seconds", stat=q)) for q in
                 ("p50", "p95", "max")]
    if all(v is not None for _, v in quantiles):
        p50, p95, top = (v * 1000 for _, v in quantiles)  # type: ignore[operator]
        lines.append(f"  latency p50 {p50:.2f} ms  p95 {p95:.2f} ms  max {top:.2f} ms")
    missing = _get(values, "golden_docs_missing_ratio")
    if missing:
        lines.append(f"  golden documents missing: {missing:.1%}")
    return lines


def _interval(values: dict[Any, float], d: dict[str, Any]) -> list[str]:
    """The fidelity's confidence interval at the verdict k, when a subset was measured."""
    gt = (d.get("fidelity") or {}).get("ground_truth") or {}
    k = d.get("verdict_k")
    lower = _get(values, "index_fidelity_lower_ratio", k=k)
    upper = _get(values, "index_fidelity_upper_ratio", k=k)
    if lower is None or upper is None or not gt.get("queries") \
            or gt["queries"] >= gt.get("total", 0):
        return []
    return [f"  fidelity@{k} {_fmt(_get(values, 'index_fidelity_ratio', k=k)).strip()}, "
            f"interval {lower:.3f}..{upper:.3f} from {gt['queries']} of {gt['total']} "
            "queries"]


def _level(values: dict[Any, float], d: dict[str, Any]) -> list[str]:
    """At which level the metrics are: chunk ids, or documents with the mapping; for
    documents, chunk-level recall at the verdict k and why it stays far below 1."""
    docs = d.get("documents")
    if d.get("level") != "document" or not docs:
        return ["  metrics at chunk level (judged ids are index keys)"]
    lines = [f"  metrics at document level: chunks collapse to documents by their best chunk "
             f"(MaxP; mapping {docs['mapping']}, up to {docs['max_depth']} x k chunks deep)"]
    k = d.get("verdict_k")
    live = _get(values, "chunk_recall_ratio", k=k, mode="live")
    if live is not None:
        lines.append(f"  chunk level: recall@{k} live {live:.3f} exact "
                     f"{_fmt(_get(values, 'chunk_recall_ratio', k=k, mode='exact')).strip()} "
                     "(a query with R relevant chunks reaches at most k/R: chunk recall@k of "
                     "pages with many chunks is bounded far below 1)")
    return lines


def _baseline(d: dict[str, Any]) -> list[str]:
    base = d.get("baseline")
    if base is None:
        return ["", f"  {_first_run(d)}"]
    lines = ["", f"  baseline: run {base['run_id']} ({base['how']}, golden set "
                 f"{base['golden_version']})"]
    for c in d.get("comparisons", []):
        if c["mode"] == "live" and c["k"] != d.get("verdict_k"):
            continue
        lo, hi = c["recall_delta_ci"]
        mc = c["mcnemar"]
        overlap = c.get("topk_overlap")
        lines.append(
            f"    {c['mode']}@{c['k']}: recall delta {c['recall_delta']:+.3f} "
            f"(95% CI {lo:+.3f}..{hi:+.3f}), hits lost {mc['lost_hits']} gained "
            f"{mc['gained_hits']} (McNemar p={mc['p_value']:.3g}) -> "
            f"{'SIGNIFICANT DROP' if c['significant_drop'] else 'no significant drop'}"
            + (f", top-k overlap {overlap:.2f}" if overlap is not None else "")
        )
    return lines


def _first_run(d: dict[str, Any]) -> str:
    """What a run without a baseline did about one, with the fidelity it saw and what a
    healthy index reaches, so a degraded index is never taken as the norm in silence."""
    ev = d.get("evidence") or {}
    fidelity, floor = ev.get("fidelity"), ev.get("fidelity_floor")
    seen = "index fidelity not measurable" if fidelity is None else (
        f"index fidelity {fidelity:.3f} at k={ev.get('fidelity_k', d.get('verdict_k'))} "
        f"(typical for a healthy index: >= {floor:g})")
    verdict = d.get("verdict")
    if verdict in ELIGIBLE_VERDICTS:
        return f"baseline captured by this run; {seen}"
    return (f"no baseline captured: this run's verdict is {verdict}; {seen}. The first "
            "healthy run becomes the baseline, or pin one: ragmon baseline pin RUN_ID")


def _ranks(ranks: dict[str, int]) -> str:
    return ", ".join(f"{doc}@{rank}" for doc, rank in sorted(ranks.items(), key=lambda x: x[1])) \
        or "none found"


def _regressed(d: dict[str, Any]) -> list[str]:
    """One line per regressed query, cut to the terminal's width (the stored details keep
    the full text and every rank)."""
    regressed = d.get("regressed") or []
    if not regressed:
        return []
    width = shutil.get_terminal_size((100, 24)).columns
    lines = ["", f"  top regressed queries (recall@{d.get('verdict_k')}):"]
    for r in regressed[:10]:
        text = r.get("query")
        name = r["query_id"] if not text else f"{r['query_id']} {_quote(text)}"
        lines.append(cut(f"    {name}: {r['recall_before']:.2f} -> {r['recall_after']:.2f}"
                         f"  ranks {_ranks(r['ranks_before'])} -> {_ranks(r['ranks_after'])}",
                         width))
    return lines


def _quote(text: str) -> str:
    return '"' + " ".join(text.split()) + '"'


def cut(line: str, width: int) -> str:
    """``line`` at most ``width`` characters, ``...`` marking a cut (plain ASCII: the
    report is printed to any terminal)."""
    return line if len(line) <= width else line[: max(width - 3, 0)] + "..."
