"""The report feature's table (migration 0008): one row per (report, period).

The row is the claim: a replica inserts it (only one INSERT can win the unique key) or takes
it over with a conditional UPDATE when the previous holder's lease ran out or a retry is
due, and only then renders and sends. ``status`` goes claimed -> sent, or claimed -> failed
(``next_attempt_at`` set: retried; unset: given up). ``failures`` counts failed attempts
(exported as ``ragmon_report_send_failures_total``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ragmon.monitor.store.models import Base, BigId, UTCDateTime


class ReportRun(Base):
    """One report of one period, claimed before it is sent."""

    __tablename__ = "report_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    report: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(64))
    since: Mapped[datetime] = mapped_column(UTCDateTime())
    until: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (UniqueConstraint("report", "period", name="uq_report_runs_report_period"),)
