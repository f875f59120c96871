"""Why an alert fired, in a few lines: the parts of a run that notifications carry.

The same facts reach every receiver: the default templates (:mod:`alerts.templates`) write
them into the summary and description, and the Alertmanager sink also adds them as
annotations of their own (``value``, ``verdict``, ``reasons``, ``regressed_queries``,
``error``), so Alertmanager's routes, Slack and email templates can use them one by one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragmon.alerts.sinks.base import Notification

#: Reasons of the verdict shown (the first ones decided it).
TOP_REASONS = 3
#: Regressed queries shown, worst first.
TOP_QUERIES = 5
#: A query's text is cut to this many characters (an ellipsis marks the cut).
QUERY_CHARS = 120


def number(value: Any) -> str:
    """A value as people read it: 0.4375, 1, 3.142e-05; text as it is."""
    if isinstance(value, float | int) and not isinstance(value, bool):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def cut(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters (the last one an ellipsis)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def series_text(series: dict[str, str]) -> str:
    """``{k=10,mode=live}`` for a matched series' labels; empty for none."""
    return "{" + ",".join(f"{k}={v}" for k, v in sorted(series.items())) + "}" if series else ""


def top_reasons(details: dict[str, Any]) -> list[str]:
    reasons = details.get("reasons")
    return [str(r) for r in reasons[:TOP_REASONS]] if isinstance(reasons, list) else []


def regressed_lines(details: dict[str, Any]) -> tuple[list[str], int]:
    """The worst regressed queries as ``id "text": recall@k before -> after``, and how many
    more regressed than are shown."""
    rows = details.get("regressed")
    if not isinstance(rows, list):
        return [], 0
    k = details.get("verdict_k")
    metric = f"recall@{k}" if k is not None else "recall"
    lines = []
    for row in rows[:TOP_QUERIES]:
        if not isinstance(row, dict):
            continue
        text = row.get("query")
        quoted = f' "{cut(text, QUERY_CHARS)}"' if isinstance(text, str) and text else ""
        lines.append(f"{row.get('query_id')}{quoted}: {metric} "
                     f"{number(row.get('recall_before'))} -> {number(row.get('recall_after'))}")
    return lines, max(0, _regressed_count(details, k, len(rows)) - len(lines))


def _regressed_count(details: dict[str, Any], k: Any, listed: int) -> int:
    """All queries that regressed at the verdict k (the details list only the worst)."""
    for c in details.get("comparisons") or []:
        if isinstance(c, dict) and c.get("mode") == "live" and c.get("k") == k \
                and isinstance(c.get("regressed_count"), int):
            return max(int(c["regressed_count"]), listed)
    return listed


def context_facts(details: dict[str, Any], series: dict[str, str],
                  link: str) -> dict[str, Any]:
    """Template variables beyond the raw run: ``reasons``, ``regressed`` (ready lines),
    ``more_regressed``, ``series`` and ``link``."""
    lines, more = regressed_lines(details)
    return {"reasons": top_reasons(details), "regressed": lines, "more_regressed": more,
            "series": series_text(series), "link": link}


def annotation_facts(n: Notification) -> dict[str, str]:
    """The facts as Alertmanager annotations (only those the run has)."""
    lines, more = regressed_lines(n.details)
    facts = {
        "value": number(n.value),
        "verdict": str(n.details.get("verdict") or ""),
        "reasons": "\n".join(top_reasons(n.details)),
        "regressed_queries": "\n".join(lines + ([f"({more} more)"] if more else [])),
        "error": n.error or "",
        "run_id": "" if n.run_id is None else str(n.run_id),
    }
    return {k: v for k, v in facts.items() if v}
