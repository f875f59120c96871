"""What the demo shows a person: per scenario, what ragmon saw (the key number before and
after), its verdict, the alert that fired and the time to detect, as one terminal table;
and, after the healthy run, what the numbers mean."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ragmon.monitor.demo.progress import is_terminal

if TYPE_CHECKING:
    from ragmon.monitor.demo.rot import Rot
    from ragmon.monitor.demo.session import Run

K = 10


@dataclass
class Outcome:
    """What one scenario produced."""

    rot: Rot
    saw: str
    verdict: str
    alerts: list[str]
    detect: str
    detail: list[str] = field(default_factory=list)

    @property
    def as_expected(self) -> bool:
        if self.rot.key == "none":
            return not self.alerts and self.verdict in ("healthy", "no drift")
        return self.verdict == self.rot.expected and bool(self.alerts)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _pair(before: float | None, after: float | None) -> str:
    return f"{_num(before)} -> {_num(after)}"


def recall_at_k(run: Run | None, mode: str = "live") -> float | None:
    return None if run is None else run.value("recall_ratio", k=K, mode=mode)


def fidelity(run: Run | None) -> float | None:
    return None if run is None else run.value("index_fidelity_ratio", k=K)


def canary_cosine(run: Run | None) -> float | None:
    return None if run is None else run.value("canary_cosine_min")


def drift_p(run: Run | None) -> float | None:
    return None if run is None else run.value("drift_p_value", method="mmd")


def coverage_gap(run: Run | None) -> float | None:
    return None if run is None else run.value("coverage_gap_ratio")


def saw(key: str, before: dict[str, Run], after: dict[str, Run]) -> str:
    """The key numbers of a scenario, before and after the change."""
    def moved(label: str, read: Any, probe: str) -> str:
        return f"{label} {_pair(read(before.get(probe)), read(after.get(probe)))}"

    recall = moved(f"recall@{K}", recall_at_k, "docs-recall")
    if key == "embedding":
        return f"{moved('canary cosine', canary_cosine, 'canary')}; {recall}"
    if key == "index":
        return f"{moved(f'fidelity@{K}', fidelity, 'docs-recall')}; {recall}"
    if key == "topics":
        return (f"{moved('MMD p-value', drift_p, 'query-drift')}; "
                f"{moved('coverage gap', coverage_gap, 'query-drift')}")
    if key == "content":
        run = after.get("docs-recall")
        missing = run.value("golden_docs_missing_ratio") if run else None
        return recall + (f"; judged documents missing {missing:.0%}" if missing else "")
    return f"{recall}; MMD p-value {_num(drift_p(after.get('query-drift')))}"


def drift_lines(run: Run | None) -> list[str]:
    """What the query drift probe says: the topics that moved only when the distribution
    moved; otherwise one line saying the difference is not significant."""
    if run is None or run.result.status != "ok":
        return []
    d = run.result.details
    if d.get("verdict") != "compared":
        return [f"query drift: {d.get('verdict')}"]
    methods = d.get("methods") or {}
    p = (methods.get("mmd") or {}).get("p_value")
    if not d.get("drifted"):
        return [f"query drift: not significant (MMD p = {_num(p)}); no topic moved"]
    lines = [f"query drift: the distribution moved (MMD p = {_num(p)}"
             f"{', alarm raised' if d.get('alarm') else ', not yet an alarm'})"]
    for c in ((methods.get("clusters") or {}).get("details") or {}).get("grew", [])[:3]:
        first = (c.get("examples") or [{}])[0]
        example = str(first.get("text", "")) if isinstance(first, dict) else str(first)
        lines.append(f"  topic grew: {c.get('label', c.get('cluster'))} "
                     f"{c['reference_share']:.0%} -> {c['current_share']:.0%}"
                     + (f', e.g. "{example[:70]}"' if example else ""))
    gap = methods.get("coverage") or {}
    if gap.get("statistic") is not None:
        lines.append(f"  coverage gap: {gap['statistic']:.0%} of the questions are farther "
                     "from every indexed chunk than almost all reference questions")
    return lines


def meaning(run: Run | None) -> str:
    """One paragraph after the healthy run: what recall@k and fidelity are, and their values."""
    r, f, exact = recall_at_k(run), fidelity(run), recall_at_k(run, "exact")
    return (
        f"What the numbers mean: recall@{K} is the share of the documents judged relevant to "
        f"a golden question that appear among the first {K} documents the index returns "
        f"(1.0: every one found). Here it is {_num(r)} with the live index and {_num(exact)} "
        "with exact search over every vector; the gap to 1.0 is what the embedding model "
        "misses on this corpus, and it is the baseline later runs are compared with, query "
        f"by query. Fidelity@{K} is the share of the exact top {K} that the approximate "
        f"index also returns: {_num(f)} here; a healthy HNSW or IVF index reaches 0.9 to 1.0, "
        "and a drop means the index, not the model or the content, lost results."
    )


def render(outcomes: list[Outcome], out: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="What ragmon detected", show_lines=True)
    for name in ("scenario", "what ragmon saw (before -> after)", "verdict", "alert fired",
                 "time to detect"):
        table.add_column(name, overflow="fold")
    for o in outcomes:
        table.add_row(f"{o.rot.title}\n({o.rot.change})", o.saw,
                      o.verdict + ("" if o.as_expected else f" (expected {o.rot.expected})"),
                      ", ".join(o.alerts) or "none", o.detect)
    console = Console(file=out, width=None if is_terminal(out) else 140,
                      no_color=not is_terminal(out))
    console.print(table)
