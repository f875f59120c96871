"""What the report says, checked against the stored history it was built from: the numbers
in the text part are read back from the store independently of the report's own queries."""

from __future__ import annotations

import re
from datetime import timedelta
from statistics import mean

from sqlalchemy import select

from ragmon.alerts.report.model import Period, Rendered
from ragmon.alerts.report.render import render_report
from ragmon.alerts.tables import AlertState
from ragmon.monitor.store.models import ProbeRun, RunValue
from ragmon.probes.drift.tables import DriftStatistic

from .history import Week


def stored(week: Week, probe: str, period: Period, name: str, labels: str) -> list[float]:
    """``name{labels}`` of every successful run of ``probe`` that started in ``period``."""
    with week.store.session() as s:
        return list(s.scalars(
            select(RunValue.value).join(ProbeRun, ProbeRun.id == RunValue.run_id)
            .where(ProbeRun.probe == probe, ProbeRun.status == "ok",
                   ProbeRun.started_at >= period.since, ProbeRun.started_at < period.until,
                   RunValue.name == name, RunValue.labels == labels)
            .order_by(ProbeRun.started_at)))


def row(text: str, label: str) -> str:
    """The cells after ``label`` in the text part's table line that starts with it."""
    match = re.search(rf"^{re.escape(label)}\s+(.+)$", text, re.M)
    assert match, f"no table row {label!r} in:\n{text}"
    return match.group(1)


def test_recall_numbers_are_the_stored_ones(week: Week, week_report: Rendered) -> None:
    text, prev = week_report.text, week.period.previous()
    for label, name, labels in (("recall@10 live", "recall_ratio", "k=10,mode=live"),
                                ("recall@10 exact", "recall_ratio", "k=10,mode=exact"),
                                ("nDCG@10 live", "ndcg_ratio", "k=10,mode=live"),
                                ("MRR live", "mrr_ratio", "mode=live"),
                                ("index fidelity@10", "index_fidelity_ratio", "k=10")):
        now = stored(week, "docs-recall", week.period, name, labels)
        before = stored(week, "docs-recall", prev, name, labels)
        assert len(now) == 7 and len(before) == 3
        change = round(mean(now) - mean(before), 3) + 0.0
        expected = f"{mean(now):.3f} ({mean(before):.3f}, {change:+.3f})    {now[-1]:.3f}"
        assert row(text, label) == expected, label
    # the scenario degraded the index for two days: the live mean fell, exact did not
    live = stored(week, "docs-recall", week.period, "recall_ratio", "k=10,mode=live")
    assert min(live) < 0.5 < max(live)


def test_regressions_name_the_worst_run_and_its_queries(week: Week,
                                                        week_report: Rendered) -> None:
    live = stored(week, "docs-recall", week.period, "recall_ratio", "k=10,mode=live")
    with week.store.session() as s:
        runs = list(s.scalars(select(ProbeRun.id).where(
            ProbeRun.probe == "docs-recall", ProbeRun.started_at >= week.period.since)
            .order_by(ProbeRun.started_at)))
    worst = runs[min(range(len(live)), key=lambda i: (live[i], -i))]
    before = {q.query_id: q.data for q in week.store.query_results(week.run_ids["docs-recall"][2])}
    after = {q.query_id: q.data for q in week.store.query_results(worst)}
    fell = sorted(q for q in after if after[q]["live"]["recall"]["10"]
                  < before[q]["live"]["recall"]["10"])
    assert fell
    assert (f"the period's lowest live recall@10 was run {worst} " in week_report.text)
    assert f"{len(fell)} of {len(after)} queries fell." in week_report.text
    assert "Verdicts this period: healthy x5, index x2." in week_report.text


def test_drift_alerts_and_headline_match_the_store(week: Week, week_report: Rendered) -> None:
    with week.store.session() as s:
        mmd = list(s.scalars(select(DriftStatistic).where(
            DriftStatistic.method == "mmd", DriftStatistic.window_end >= week.period.since)))
        gaps = [r.statistic for r in s.scalars(select(DriftStatistic).where(
            DriftStatistic.method == "coverage", DriftStatistic.window_end >= week.period.since))]
        states = {st.rule: st for st in s.scalars(select(AlertState))}
    text = week_report.text
    drifted, alarms = sum(r.drifted for r in mmd), sum(r.alarm for r in mmd)
    assert alarms >= 1
    assert (f"{len(mmd)} windows compared; the deciding method is mmd: {drifted} windows "
            f"differed from the reference, {alarms} held the alarm.") in " ".join(text.split())
    assert f"mean {mean(gaps):.3f} (0.000, +{mean(gaps):.3f})" in " ".join(text.split())
    # the cluster findings are significant: the deciding test found the windows moved
    assert "where the mmd test found the distribution moved" in " ".join(text.split())
    assert re.search(r"^asyncio\b.*\bgrew\b", text, re.M), "the unindexed topic grew"
    index = states["RecallIndexDegraded"]
    hours = (index.resolved_at - index.fired_at) / timedelta(hours=1)
    assert re.search(rf"^RecallIndexDegraded\s+critical\s+.+\s+{int(hours // 24)}d "
                     rf"{int(hours % 24)}h 0m$", text, re.M)
    assert states["QueryDrift"].state == "firing"
    assert re.search(r"^QueryDrift\s+warning\s+.+still firing", text, re.M)
    assert week_report.status == "degraded"
    assert " ".join(text.splitlines()[2:4]).startswith(
        "DEGRADED: queries-drift: the embeddings of the query traffic drifted from their "
        "reference")
    assert "canary: unchanged in all 3 successful runs" in text


def test_a_period_before_any_run_is_short_and_honest(week: Week) -> None:
    empty = Period(week.period.since - timedelta(days=60), week.period.since - timedelta(days=53))
    rendered = render_report(week.store, week.loaded, empty, now=week.period.until)
    assert rendered.status == "no data"
    assert rendered.images == []
    assert "NO DATA: no probe ran in this period." in rendered.text
    assert f"Probes: {', '.join(week.loaded.probes)}." in " ".join(rendered.text.split())
    assert len(rendered.text.splitlines()) < 15
    assert "<img" not in rendered.html_file
