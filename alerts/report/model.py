"""What a rendered report is, shared by the parts that build it and the parts that deliver it.

``Period`` is the half-open interval [since, until) in UTC with its stable key (the claim in
``report_runs`` is unique per key). ``Rendered`` is what delivery needs: a subject, the
plain-text part, the HTML part for email (charts referenced as ``cid:<cid>``) with its
images, and the self-contained HTML for ``--out`` (the same charts as data URIs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Period:
    since: datetime
    until: datetime

    @property
    def key(self) -> str:
        """Stable identity of the period, e.g. ``2026-11-23T08:00Z/2026-11-30T08:00Z``."""
        fmt = "%Y-%m-%dT%H:%MZ"
        return f"{self.since.strftime(fmt)}/{self.until.strftime(fmt)}"

    @property
    def length(self) -> timedelta:
        return self.until - self.since

    def previous(self) -> Period:
        """The period of the same length just before this one (what numbers compare with)."""
        return Period(self.since - self.length, self.since)


@dataclass(frozen=True)
class Image:
    """One inline chart: PNG bytes, the ``cid`` the email HTML refers to, and the one-line
    text that stands in for it when images are blocked."""

    cid: str
    png: bytes
    summary: str


@dataclass
class Rendered:
    subject: str
    text: str
    html_email: str
    html_file: str
    images: list[Image] = field(default_factory=list)
    #: Headline state for metrics and logs: "healthy", "degraded", "no data" or "failing".
    status: str = "healthy"
