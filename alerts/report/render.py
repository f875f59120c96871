"""Rendering of the report: the sections become the plain-text part, the email HTML (charts
as ``cid:`` references) and the self-contained HTML file (charts as data URIs).

HTML comes from Jinja2 templates with autoescape on (query and example texts are user
data) and inline CSS only, which mail clients keep: no external CSS, scripts or fonts.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache, partial
from typing import TYPE_CHECKING

from ragmon.alerts.report.blocks import Chart, Para, Section, Table
from ragmon.alerts.report.build import ReportData, build
from ragmon.alerts.report.drift import drift_section
from ragmon.alerts.report.findings import PART_FAILED, Finding, headline
from ragmon.alerts.report.model import Image, Period, Rendered
from ragmon.alerts.report.ops import (
    alerts_section,
    canary_section,
    failing_only,
    housekeeping_section,
)
from ragmon.alerts.report.recall import recall_section
from ragmon.monitor.common import iso

log = logging.getLogger("ragmon.report")

if TYPE_CHECKING:
    import jinja2

    from ragmon.monitor.config import RootConfig
    from ragmon.monitor.store import Store


@cache
def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("ragmon.alerts.report", "templates"),
        # query and example texts are user data: escaped everywhere but in the text part
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",),
                                            disabled_extensions=("txt.j2",), default=True),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True)
    env.filters["text_table"] = text_table
    return env


def text_table(table: Table, width: int = 44) -> str:
    """A table as aligned plain-text columns, each cell cut to ``width`` characters (the
    HTML part keeps the longer text)."""
    rows = [table.headers, *([_cut(c, width) for c in row] for row in table.rows)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(table.headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_report(store: Store, config: RootConfig, period: Period, *,
                  now: datetime | None = None) -> Rendered:
    """The report of ``period`` from the stored history, ready to send or to write."""
    data = build(store, config, period, now or datetime.now(UTC))
    status, sentence, sections = compose(store, data)
    images = [b.image for s in sections for b in s.blocks
              if isinstance(b, Chart) and b.image is not None]
    subject = f"ragmon weekly report {period_label(period)}: {status} - {sentence}"
    context = {"period": period_label(period), "generated": iso(data.generated_at),
               "status": status, "headline": sentence, "sections": sections,
               "compared": status in ("healthy", "degraded")}
    env = _environment()
    text = env.get_template("report.txt.j2").render(**context)
    html_email = env.get_template("report.html.j2").render(**context, src=_cid_src)
    html_file = env.get_template("report.html.j2").render(**context, src=_data_src)
    return Rendered(subject=_one_line(subject), text=text, html_email=html_email,
                    html_file=html_file, images=images, status=status)


def compose(store: Store, data: ReportData) -> tuple[str, str, list[Section]]:
    """The status, the headline sentence and the sections of a report."""
    if data.total_runs == 0:
        return "no data", "no probe ran in this period.", [_empty(data)]
    if data.failed_runs == data.total_runs:
        section, _ = housekeeping_section(data, data.golden)
        section.blocks.insert(0, Para(f"All {data.total_runs} probe runs of this period "
                                      "failed: there are no measurements to report. The "
                                      "errors are below.", "bad"))
        finding = failing_only(data)
        return "failing", finding.sentence, [section]
    sections: list[Section] = []
    findings: list[Finding] = []
    texts = {v.version: v.texts for v in data.golden}
    parts: list[tuple[str, str, Callable[[], tuple[Section, list[Finding]]]]] = []
    for p in data.probes:
        if p.kind == "recall" and p.runs:
            parts.append((f"Recall: {p.name}", f"recall-{p.name}",
                          partial(recall_section, store, p, texts)))
        elif p.kind == "drift" and p.runs:
            parts.append((f"Embedding drift: {p.name}", f"drift-{p.name}", partial(
                drift_section, p, [d for d in data.drift if d.probe == p.name],
                [d for d in data.drift_before if d.probe == p.name])))
    parts += [("Canary: the embedding pipeline", "canary", partial(canary_section, data)),
              ("Alerts", "alerts", partial(alerts_section, data.alerts, data.period)),
              ("Housekeeping", "housekeeping", partial(housekeeping_section, data,
                                                       data.golden))]
    for title, slug, make in parts:
        section, found = _guarded(title, slug, make)
        sections.append(section)
        findings.extend(found)
    status, sentence = headline(findings)
    return status, sentence, sections


def _guarded(title: str, slug: str, make: Callable[[], tuple[Section, list[Finding]]]
             ) -> tuple[Section, list[Finding]]:
    """One part of the report; a part that fails (history written by another version, a
    bug) says so in its place and in the headline, and the other parts still stand."""
    try:
        return make()
    except Exception as exc:  # noqa: BLE001 - one part must never fail the whole report
        log.exception("report part %r could not be built", title)
        reason = f"{type(exc).__name__}: {_one_line(str(exc))[:200]}"
        what = title.split(": ", 1)
        subject = f"the {what[0].lower()} part of {what[1]}" if len(what) == 2 else \
            f"the {title.lower()} part"
        return (Section(title, slug=slug).add(Para(
            f"This part could not be built from the stored history ({reason}); the rest of "
            "the report stands.", "bad")),
            [Finding(PART_FAILED, f"{subject} could not be built.", problem=True)])


def _empty(data: ReportData) -> Section:
    names = ", ".join(p.name for p in data.probes) or "none are configured"
    return Section("Probe runs", slug="housekeeping").add(Para(
        f"No probe run was stored between {iso(data.period.since)} and "
        f"{iso(data.period.until)}, so there is nothing to compare. Probes: {names}. If the "
        "daemon should have run, check that it is up and that it writes to this store.",
        "muted"))


def period_label(period: Period) -> str:
    fmt = "%Y-%m-%d %H:%M"
    return f"{period.since.strftime(fmt)} to {period.until.strftime(fmt)} UTC"


def _cid_src(image: Image) -> str:
    return f"cid:{image.cid}"


def _data_src(image: Image) -> str:
    return "data:image/png;base64," + base64.b64encode(image.png).decode("ascii")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _one_line(text: str) -> str:
    return " ".join(text.split())


__all__ = ["compose", "period_label", "render_report"]
