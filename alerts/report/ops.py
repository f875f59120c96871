"""The report's operational parts: the canary (did the embedding pipeline change, and
when), the alerts of the period with their durations, and housekeeping (probe success
rates, the index count over time, golden set versions)."""

from __future__ import annotations

from typing import Any

from ragmon.alerts.report.blocks import Chart, Para, Section, Table
from ragmon.alerts.report.build import ReportData, Run
from ragmon.alerts.report.charts import Series, trend
from ragmon.alerts.report.findings import (
    ALERT,
    CANARY,
    FAILING,
    Finding,
    duration,
    when,
)
from ragmon.alerts.report.model import Period
from ragmon.alerts.report.sources import Episode, GoldenVersion

#: A probe failing more often than this in a period is a finding.
FAILURE_SHARE = 0.2


def canary_section(data: ReportData) -> tuple[Section, list[Finding]]:
    section = Section("Canary: the embedding pipeline", slug="canary")
    findings: list[Finding] = []
    canaries = [p for p in data.probes if p.kind == "canary"]
    for p in canaries:
        changed = [r for r in p.ok if any(v > 0 for v in r.labelled("canary_changed").values())]
        cosines = [v for r in p.ok for v in r.labelled("canary_cosine_min").values()]
        low = f"; lowest canary cosine {min(cosines):.6f}" if cosines else ""
        if changed:
            first = changed[0]
            where = f" on {first.instance}" if len(p.instances) > 1 else ""
            diff = first.details.get("fingerprint_diff") or {}
            what = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in diff.items())
            section.add(Para(f"{p.name}: the embedding pipeline CHANGED, first seen "
                             f"{when(first.started_at)}{where} ({len(changed)} of "
                             f"{len(p.ok)} runs)"
                             + (f": {what}" if what else "") + low + ".", "bad"))
            findings.append(Finding(CANARY, f"the embedding pipeline changed on "
                                    f"{when(first.started_at)} (canary {p.name}).",
                                    problem=True))
        elif p.ok:
            section.add(Para(f"{p.name}: unchanged in all {len(p.ok)} successful runs{low}.",
                             "good"))
        else:
            section.add(Para(f"{p.name}: no successful run in this period.", "bad"))
    section.add(*_fingerprints(data))
    if not canaries:
        section.add(Para("No canary probe is configured; the embedder fingerprints of the "
                         "runs are the only evidence.", "muted"))
    return section, findings


def _fingerprints(data: ReportData) -> list[Any]:
    """Embedder fingerprints the period's runs used, with when each first appeared."""
    firsts: dict[str, Any] = {}
    for p in data.probes:
        for r in p.ok:
            if r.embedder_fingerprint and (r.embedder_fingerprint not in firsts
                                           or r.started_at < firsts[r.embedder_fingerprint]):
                firsts[r.embedder_fingerprint] = r.started_at
    if len(firsts) <= 1:
        return [Para("All runs used one embedding pipeline fingerprint"
                     + (f" ({next(iter(firsts))[:12]})." if firsts else "."), "muted")]
    order = sorted(firsts.items(), key=lambda x: x[1])
    return [Para("Runs used several embedding pipeline fingerprints: "
                 + ", ".join(f"{fp[:12]} from {when(ts)}" for fp, ts in order) + ".", "bad")]


def alerts_section(episodes: list[Episode], period: Period) -> tuple[Section, list[Finding]]:
    section = Section("Alerts", slug="alerts")
    if not episodes:
        section.add(Para("No alert fired in this period.", "good"))
        return section, []
    rows = []
    for ep in episodes:
        end = "still firing" if ep.resolved_at is None or ep.resolved_at >= period.until \
            else when(ep.resolved_at)
        rows.append([ep.rule, ep.severity, _cut(ep.summary),
                     when(ep.fired_at) if ep.fired_at else "-", end,
                     duration(ep.duration(period.until))])
    firing = [ep for ep in episodes if ep.resolved_at is None]
    section.add(Para(f"{len(episodes)} alert episodes; {len(firing)} still firing at the end "
                     "of the period.", "bad" if firing else ""))
    section.add(Table(["rule", "severity", "summary", "fired", "resolved", "duration"], rows,
                      nowrap=(3, 4, 5)))
    finding = Finding(ALERT, f"{len(episodes)} alerts fired ({len(firing)} still firing: "
                      + ", ".join(sorted({e.rule for e in firing})) + ")." if firing else
                      f"{len(episodes)} alerts fired and all resolved.", problem=bool(firing))
    return section, [finding]


def _cut(text: str, width: int = 80) -> str:
    one = " ".join(text.split())
    return one if len(one) <= width else one[: width - 3] + "..."


def housekeeping_section(data: ReportData,
                         versions: list[GoldenVersion]) -> tuple[Section, list[Finding]]:
    section = Section("Housekeeping", slug="housekeeping")
    findings: list[Finding] = []
    rows = []
    for p in data.probes:
        if not p.runs and not p.previous:
            rows.append([p.name, p.kind, "0", "-", "-", "never ran"])
            continue
        rate = _rate(p.runs)
        before = _rate(p.previous)
        last_error = next((r.error for r in reversed(p.failed) if r.error), "")
        several = len(p.instances) > 1
        rows.append([p.name + (f" ({len(p.instances)} instances)" if several else ""), p.kind,
                     str(len(p.runs)),
                     "-" if rate is None else f"{rate:.0%}",
                     "-" if before is None else f"{before:.0%}", _cut(last_error or "", 70)])
        if p.runs and len(p.failed) / len(p.runs) > FAILURE_SHARE:
            findings.append(Finding(FAILING, f"{p.name} failed {len(p.failed)} of its "
                                    f"{len(p.runs)} runs" + (f" ({_cut(last_error, 60)})"
                                                             if last_error else "") + ".",
                                    problem=True))
    section.add(Table(["probe", "kind", "runs", "success", "previous", "last error"], rows))
    for p in data.probes:  # the table cuts errors short; each failing probe's newest, whole
        last = next((r for r in reversed(p.failed) if r.error), None)
        if last is not None:
            section.add(Para(f"{p.name} failed {len(p.failed)} of {len(p.runs)} runs; newest "
                             f"error ({when(last.started_at)}): {_cut(last.error or '', 400)}",
                             "bad"))
    section.add(*_index_counts(data))
    section.add(*_golden(data, versions))
    return section, findings


def _rate(runs: list[Run]) -> float | None:
    return sum(r.status == "ok" for r in runs) / len(runs) if runs else None


def _index_counts(data: ReportData) -> list[Any]:
    by_target: dict[str, list[tuple[Any, float]]] = {}
    for p in data.probes:
        for r in p.ok:
            n = r.value("index_vectors")
            if n is not None and p.target is not None:
                by_target.setdefault(p.target, []).append((r.started_at, n))
    out = []
    for target, pts in sorted(by_target.items()):
        pts.sort()
        first, last = pts[0][1], pts[-1][1]
        summary = (f"vectors in {target}: {int(last):,} at the end of the period "
                   f"({int(last - first):+,} since its start; range "
                   f"{int(min(v for _, v in pts)):,}..{int(max(v for _, v in pts)):,}).")
        if first == last and min(v for _, v in pts) == max(v for _, v in pts):
            out.append(Chart(f"vectors in {target}: {int(last):,}, unchanged through the "
                             f"period ({len(pts)} counts)."))
            continue
        out.append(trend(f"index vectors - {target}", [Series(target, pts)], summary,
                         step=True, span=(data.period.since, data.period.until)))
    return out


def _golden(data: ReportData, versions: list[GoldenVersion]) -> list[Any]:
    used: dict[tuple[str, str], Any] = {}
    for p in data.probes:
        for r in p.ok:
            name = r.details.get("golden", {}).get("name") if isinstance(
                r.details.get("golden"), dict) else None
            if r.golden_version and name:
                used.setdefault((name, r.golden_version), r.started_at)
    if not used:
        return []
    known = {(v.name, v.version): v for v in versions}
    rows = []
    for (name, version), first in sorted(used.items(), key=lambda x: x[1]):
        v = known.get((name, version))
        rows.append([name, version[:12], "-" if v is None else str(v.queries), when(first)])
    changed = len({n for n, _ in used}) < len(used)
    head = Para("Golden set versions used in this period"
                + (" (edited during the period):" if changed else ":"),
                "" if not changed else "bad")
    return [head, Table(["golden set", "version", "queries", "first used"], rows)]


def failing_only(data: ReportData) -> Finding:
    return Finding(FAILING, f"every one of the {data.total_runs} probe runs failed.", True)


__all__ = ["alerts_section", "canary_section", "failing_only", "housekeeping_section"]
