"""The embedding-drift part of the report: trends of each method's statistic with the
alarms, the clusters that grew or shrank (findings only when the deciding test said the
distribution moved), and the coverage-gap share with example queries."""

from __future__ import annotations

from typing import Any

from ragmon.alerts.report.blocks import Para, Section, Table
from ragmon.alerts.report.build import ProbeHistory
from ragmon.alerts.report.charts import Series, trend
from ragmon.alerts.report.findings import (
    CHANGE,
    DRIFT,
    DRIFT_ALARM,
    STEADY,
    Finding,
    delta,
    mean,
    when,
)
from ragmon.alerts.report.sources import DriftPoint, Shift

#: What each method's statistic is, for the chart summaries.
MEANING = {"mmd": "MMD^2", "classifier": "domain-classifier AUC", "centroid":
           "centroid cosine distance", "clusters": "cluster-share JS divergence",
           "coverage": "coverage-gap share"}
#: What each source's embeddings are, in a sentence.
SOURCES = {"queries": "query traffic", "index": "index", "canary": "canary"}
#: Lines per chart when sidecars each have their own windows.
MAX_LINES = 6
#: The coverage-gap share this much above the previous period's is news.
GAP_RISE = 0.05


def decider(p: ProbeHistory) -> str:
    for run in reversed(p.runs):
        if run.details.get("decided_by"):
            return str(run.details["decided_by"])
    return "mmd"


def drift_section(p: ProbeHistory, current: list[DriftPoint],
                  previous: list[DriftPoint]) -> tuple[Section, list[Finding]]:
    """One drift probe's section and findings from its statistics in the two periods."""
    source = next((pt.source for pt in current), None) or next(
        (str(r.details.get("source")) for r in p.runs if r.details.get("source")), "?")
    section = Section(f"Embedding drift: {p.name} ({SOURCES.get(source, source)})",
                      slug=f"drift-{p.name}")
    if not current:
        reason = _why_nothing(p)
        section.add(Para(f"No window of {p.name} was compared in this period{reason}.",
                         "muted"))
        return section, []
    main = decider(p)
    findings: list[Finding] = []
    methods = sorted({pt.method for pt in current if pt.method != "coverage"},
                     key=lambda m: (m != main, m))
    windows = sorted({pt.window_end for pt in current if pt.method == main})
    alarms = [pt for pt in current if pt.method == main and pt.alarm]
    drifted = [pt for pt in current if pt.method == main and pt.drifted]
    section.add(Para(f"{len(windows)} windows compared; the deciding method is {main}: "
                     f"{len(drifted)} windows differed from the reference, "
                     f"{len(alarms)} held the alarm.", "bad" if alarms else ""))
    for method in methods:
        section.add(method_chart(p, method, current, previous, method == main))
    if alarms:
        findings.append(Finding(DRIFT_ALARM, f"{p.name}: the embeddings of the "
                                f"{SOURCES.get(source, source)} drifted "
                                f"from their reference (alarm since {when(alarms[0].window_end)}"
                                f").", problem=True))
    elif drifted:
        findings.append(Finding(DRIFT, f"{p.name}: {len(drifted)} windows of "
                                f"{SOURCES.get(source, source)} "
                                "embeddings differed from the reference, without an alarm."))
    else:
        findings.append(Finding(STEADY, f"{p.name}: no drift in the "
                                f"{SOURCES.get(source, source)} embeddings."))
    section.add(*clusters(current, main))
    blocks, gap = coverage(p, current, previous)
    section.add(*blocks)
    if gap is not None:
        findings.append(gap)
    return section, findings


def _why_nothing(p: ProbeHistory) -> str:
    verdicts = {str(r.details.get("verdict")) for r in p.ok if r.details.get("verdict")}
    if verdicts:
        return f" (runs said: {', '.join(sorted(verdicts))})"
    return ""


def method_chart(p: ProbeHistory, method: str, current: list[DriftPoint],
                 previous: list[DriftPoint], decides: bool) -> Any:
    probe = p.name
    pts = [pt for pt in current if pt.method == method]
    before = [pt.statistic for pt in previous if pt.method == method and pt.probe == probe]
    marks = [(pt.window_end, pt.statistic) for pt in pts if pt.alarm]
    instances = sorted({pt.instance for pt in pts})
    series = [Series(i or method, [(pt.window_end, pt.statistic) for pt in pts
                                   if pt.instance == i],
                     marks=[(pt.window_end, pt.statistic) for pt in pts
                            if pt.instance == i and pt.alarm])
              for i in instances[:MAX_LINES]]
    name = MEANING.get(method, method)
    summary = (f"{name} ({method}{', decides' if decides else ''}) of {probe}: mean "
               f"{delta(mean([pt.statistic for pt in pts]), mean(before), 4)}; "
               f"{sum(pt.drifted for pt in pts)} of {len(pts)} windows differed"
               + (f", alarm in {len(marks)}" if decides else "") + ".")
    if len(instances) > MAX_LINES:
        summary = summary[:-1] + f" (the first {MAX_LINES} of {len(instances)} instances drawn)."
    return trend(f"{name} - {probe}", series, summary, span=p.span)


def clusters(current: list[DriftPoint], main: str) -> list[Any]:
    """The newest windows' clusters that moved: findings when the deciding method found the
    window different, otherwise shown as not significant."""
    moved = {pt.window_end for pt in current if pt.method == main and pt.drifted}
    with_shifts = [pt for pt in current if pt.method == "clusters" and pt.shifts]
    if not with_shifts:
        return []
    significant = [pt for pt in with_shifts if pt.window_end in moved]
    pick = (significant or with_shifts)[-1]
    if significant:
        head = Para(f"Clusters that moved in the window ending {when(pick.window_end)}, where "
                    f"the {main} test found the distribution moved:", "bad")
    else:
        head = Para(f"Clusters in the newest window (ending {when(pick.window_end)}) - not "
                    f"significant: the {main} test did not find the distribution moved in "
                    "this period, so these shifts are within chance.", "muted")
    return [head, Table(["cluster", "moved", "share before -> now", "examples"],
                        [_shift_row(sh) for sh in pick.shifts], nowrap=(1, 2))]


def _shift_row(sh: Shift) -> list[str]:
    examples = "; ".join(_cut(t) for t in sh.examples[:2]) or "-"
    # a label is "terms: the text nearest the centre"; the examples show texts already
    terms = (sh.label or "").split(": ", 1)[0] or "unlabelled"
    return [_cut(terms, 80), sh.direction,
            f"{sh.reference_share:.1%} -> {sh.current_share:.1%}", examples]


def _cut(text: str, width: int = 90) -> str:
    one = " ".join(text.split())
    return one if len(one) <= width else one[: width - 3] + "..."


def coverage(p: ProbeHistory, current: list[DriftPoint],
             previous: list[DriftPoint]) -> tuple[list[Any], Finding | None]:
    probe = p.name
    pts = [pt for pt in current if pt.method == "coverage"]
    if not pts:
        return [], None
    before = mean([pt.statistic for pt in previous if pt.method == "coverage"
                   and pt.probe == probe])
    now = mean([pt.statistic for pt in pts])
    last = pts[-1]
    summary = (f"coverage-gap share of {probe} (queries farther from the index than the "
               f"reference's {last.details.get('quantile', 0.95):.0%} quantile): mean "
               f"{delta(now, before)}; {sum(pt.drifted for pt in pts)} of {len(pts)} "
               "windows above the expected share.")
    instances = sorted({pt.instance for pt in pts})[:MAX_LINES]
    lines = [Series(i or "gap share", [(pt.window_end, pt.statistic) for pt in pts
                                       if pt.instance == i]) for i in instances]
    blocks: list[Any] = [trend(f"coverage-gap share - {probe}", lines, summary, span=p.span)]
    examples = [str(e.get("text") if isinstance(e, dict) else e)
                for e in (last.details.get("examples") or [])][:5]
    if examples:
        blocks.append(Para("Example queries outside the index's coverage: "
                           + "; ".join(f'"{_cut(e, 80)}"' for e in examples)))
    else:
        blocks.append(Para("No example gap queries were stored with the newest window.",
                           "muted"))
    finding = None
    if now is not None and before is not None and now - before >= GAP_RISE:
        finding = Finding(CHANGE, f"{probe}: the share of queries outside the index's "
                          f"coverage rose from {before:.1%} to {now:.1%}.", problem=True)
    return blocks, finding


__all__ = ["drift_section"]
