"""What the headline is chosen from: each section states its findings, ranked by weight.

The headline is the heaviest finding's sentence; the report is *degraded* when any finding
is a problem (``problem=True``), *healthy* otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

#: Weights, heaviest first: what a reader must hear about before anything else.
FAILING, RECALL_VERDICT, CANARY, DRIFT_ALARM, ALERT, RECALL_DROP, DRIFT, CHANGE, STEADY = (
    90, 80, 70, 60, 50, 40, 30, 20, 10)
#: A part of the report that could not be built: below any measured problem, above news.
PART_FAILED = 45


@dataclass(frozen=True)
class Finding:
    weight: int
    sentence: str
    problem: bool = False


def headline(findings: Iterable[Finding]) -> tuple[str, str]:
    """The status ("healthy" or "degraded") and the single most important sentence."""
    ranked = sorted(findings, key=lambda f: (-f.weight, not f.problem))
    if not ranked:
        return "healthy", "no change worth reporting."
    status = "degraded" if any(f.problem for f in ranked) else "healthy"
    return status, ranked[0].sentence


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def delta(now: float | None, before: float | None, digits: int = 3) -> str:
    """``0.823 (0.911, -0.088)``: this period's value with the previous one and the change."""
    if now is None:
        return "-"
    if before is None:
        return f"{now:.{digits}f} (no previous)"
    change = round(now - before, digits) + 0.0  # no "-0.000" from rounding noise
    return f"{now:.{digits}f} ({before:.{digits}f}, {change:+.{digits}f})"


def when(ts: datetime) -> str:
    return ts.strftime("%a %d %b %H:%M")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = int(round(seconds / 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if hours or days:
        parts.append(f"{hours}h")
    parts.append(f"{mins}m")
    return " ".join(parts)


__all__ = ["Finding", "delta", "duration", "fmt", "headline", "mean", "when"]
