"""The report's charts: small PNG trend lines drawn with matplotlib's ``Figure`` on the Agg
canvas (never pyplot, whose global state is not safe in the daemon's threads).

Each chart comes with a one-line summary that the HTML shows under it and the text part
shows instead of it. A chart with too little to draw (one point) or one that fails to draw
keeps only its summary: one bad chart never fails the report.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ragmon.alerts.report.blocks import Chart
from ragmon.alerts.report.model import Image

log = logging.getLogger("ragmon.report")

#: 640 x 240 px at 100 dpi: the width of the email's content column.
WIDTH, HEIGHT, DPI = 6.4, 2.4, 100
COLOURS = ("#2563eb", "#f59e0b", "#10b981", "#8b5cf6", "#ef4444", "#0ea5e9", "#64748b")


@dataclass
class Series:
    """One line: its label, its points (time, value) and the times to mark (alarms)."""

    label: str
    points: list[tuple[datetime, float]]
    marks: list[tuple[datetime, float]] = field(default_factory=list)
    dashed: bool = False


def trend(title: str, series: Sequence[Series], summary: str, *, ylabel: str = "",
          unit_range: bool = False, step: bool = False,
          span: tuple[datetime, datetime] | None = None) -> Chart:
    """A trend chart of ``series`` over time, or its summary alone when fewer than two
    points would be drawn or drawing fails."""
    drawn = [s for s in series if s.points]
    if max((len(s.points) for s in drawn), default=0) < 2:
        return Chart(summary)
    try:
        png = _draw(title, drawn, ylabel, unit_range, step, span)
    except Exception as exc:  # noqa: BLE001 - a chart must never fail the report
        log.warning("report chart %r could not be drawn: %s", title, exc)
        return Chart(summary)
    cid = "chart-" + hashlib.sha256(title.encode() + png).hexdigest()[:16] + "@ragmon"
    return Chart(summary, Image(cid=cid, png=png, summary=summary))


def _draw(title: str, series: Sequence[Series], ylabel: str, unit_range: bool,
          step: bool, span: tuple[datetime, datetime] | None) -> bytes:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI)
    ax = fig.add_subplot()
    for i, s in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        xs = _nums([p[0] for p in s.points])  # date numbers: matplotlib's time axis
        ys = [p[1] for p in s.points]
        style = "--" if s.dashed else "-"
        if step:
            ax.step(xs, ys, where="post", color=colour, linestyle=style, linewidth=1.6,
                    label=s.label)
        else:
            ax.plot(xs, ys, color=colour, linestyle=style, linewidth=1.6, label=s.label,
                    marker="o" if len(xs) <= 30 else None, markersize=3)
        if s.marks:
            ax.scatter(_nums([m[0] for m in s.marks]), [m[1] for m in s.marks], color="#dc2626",
                       marker="x", s=40, zorder=5, label=f"{s.label} alarm")
    ax.set_title(title, fontsize=10, loc="left")
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=8)
    if unit_range:
        low = min(min(p[1] for p in s.points) for s in series)
        ax.set_ylim(max(0.0, min(low - 0.05, 0.8)), 1.02)
    if span is not None:  # every chart of a report spans its whole period
        ax.set_xlim(float(_nums(span[0])), float(_nums(span[1])))
    locator = AutoDateLocator(minticks=3, maxticks=8)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    ax.tick_params(labelsize=8)
    ax.grid(True, color="#e5e7eb", linewidth=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if len(series) > 1 or any(s.marks for s in series):
        ax.legend(fontsize=7, loc="best", frameon=False, ncol=min(len(series) + 1, 4))
    fig.tight_layout(pad=0.6)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)  # Figure() draws on the Agg canvas by default
    return buf.getvalue()


def _nums(times: datetime | list[datetime]) -> Any:
    """Times as matplotlib's date numbers (days), the x values of its time axis."""
    from matplotlib.dates import date2num

    return date2num(times)  # type: ignore[no-untyped-call]


__all__ = ["Series", "trend"]
