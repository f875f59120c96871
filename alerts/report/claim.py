"""Exactly once per period: the claim in ``report_runs`` that a replica holds while it renders
and sends one period's report.

A period's row is unique per (report, period key). To claim a period a replica, in one
transaction (on PostgreSQL under ``pg_advisory_xact_lock`` of that key, so the decision
below is taken by one replica at a time):

- inserts the row as ``claimed`` (``INSERT ... ON CONFLICT DO NOTHING``: one insert wins), or
- takes the row over with an UPDATE conditional on what it read, when the row is
  ``claimed`` but its lease has ended (the holder died between claiming and sending: the
  report was not sent, so it is sent again) or ``failed`` with a retry due.

A ``sent`` row is never claimed again: a restart after sending does not resend. A claim is
identified by its replica and the ``claimed_until`` it wrote; the result is recorded by an
UPDATE conditional on both, so a replica whose lease ran out records nothing and whoever
holds the row decides. The send must end by half the lease (``smtp.timeout``, checked at
load), the other half being margin for clock skew and recording.

No attempt starts later than ``retry.give_up_after`` past the period's end, or after
``retry.max_attempts``: the row stays ``failed`` with no retry due (given up).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, and_, select, text, update

from ragmon.alerts.report.config import RetryConfig
from ragmon.alerts.report.model import Period
from ragmon.alerts.report.tables import ReportRun
from ragmon.monitor.store import Store, insert_ignore

log = logging.getLogger("ragmon.report")

#: The scheduled report's name in ``report_runs``.
SCHEDULED = "weekly"


@dataclass(frozen=True)
class Claim:
    """One claim on one period's row, as this replica made it."""

    row_id: int
    period: Period
    until: datetime  # the claimed_until written: with the replica, it identifies the claim
    attempt: int  # this attempt's number (1 for the first)
    deadline: float  # time.monotonic() by which the send must have ended


def replica_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def lock_key(report: str, period: Period) -> int:
    """A signed 64-bit advisory lock id for one (report, period)."""
    digest = hashlib.sha256(f"ragmon-report:{report}:{period.key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class ReportClaims:
    """Claims periods in ``report_runs`` and records what became of each send."""

    def __init__(self, store: Store, retry: RetryConfig, *, replica: str | None = None,
                 report: str = SCHEDULED):
        self.store = store
        self.retry = retry
        self.replica = replica or replica_name()
        self.report = report

    def claim(self, period: Period, now: datetime | None = None, *,
              by_hand: bool = False) -> Claim | None:
        """Claim ``period`` for this replica, or None when it is sent, held by another
        replica, not due for a retry, or past its retries. ``by_hand`` (``ragmon report
        --send --scheduled``) also takes a period whose retries ended."""
        now = now or datetime.now(UTC)
        started = time.monotonic()
        until = now + timedelta(seconds=self.retry.lease)
        if not by_hand and now > period.until + timedelta(seconds=self.retry.give_up_after):
            return None
        with self.store.session() as s:
            if self.store.dialect == "postgresql":
                s.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                          {"key": lock_key(self.report, period)})
            row = s.scalars(select(ReportRun).where(
                ReportRun.report == self.report, ReportRun.period == period.key)).one_or_none()
            if row is None:
                values = {"report": self.report, "period": period.key, "since": period.since,
                          "until": period.until, "status": "claimed", "attempts": 1,
                          "failures": 0, "claimed_by": self.replica, "claimed_until": until,
                          "started_at": now, "details": {}}
                if not insert_ignore(s, ReportRun, values, ["report", "period"]):
                    return None  # another replica inserted it first
                row_id = s.scalar(select(ReportRun.id).where(
                    ReportRun.report == self.report, ReportRun.period == period.key))
                assert row_id is not None
                return Claim(row_id, period, until, 1, started + self.retry.lease / 2)
            if not _claimable(row, now, None if by_hand else self.retry.max_attempts):
                return None
            # Read before the UPDATE: the session synchronises ``row`` with what it writes.
            row_id, status, attempt = row.id, row.status, row.attempts + 1
            held_by = row.claimed_by if status == "claimed" else None
            result = s.execute(update(ReportRun).where(
                ReportRun.id == row_id, ReportRun.status == status,
                ReportRun.attempts == attempt - 1,
            ).values(status="claimed", attempts=attempt, claimed_by=self.replica,
                     claimed_until=until, next_attempt_at=None))
            assert isinstance(result, CursorResult)  # an UPDATE has a rowcount
            if result.rowcount != 1:
                return None
            if held_by is not None:
                log.warning("report %s: the claim of %s ended before it was sent; sending it "
                            "again", period.key, held_by)
            return Claim(row_id, period, until, attempt, started + self.retry.lease / 2)

    def sent(self, claim: Claim, details: dict[str, Any],
             now: datetime | None = None) -> bool:
        """Record a sent report; False if the claim had ended (nothing is written)."""
        return self._record(claim, {"status": "sent", "finished_at": now or datetime.now(UTC),
                                    "claimed_until": None, "error": None,
                                    "details": details})

    def failed(self, claim: Claim, error: str, now: datetime | None = None) -> datetime | None:
        """Record a failed attempt; returns when the next one is due (None: given up)."""
        now = now or datetime.now(UTC)
        delay = min(self.retry.max_backoff, self.retry.backoff * 2 ** (claim.attempt - 1))
        retry_at: datetime | None = now + timedelta(seconds=delay)
        window_end = claim.period.until + timedelta(seconds=self.retry.give_up_after)
        if claim.attempt >= self.retry.max_attempts or (retry_at and retry_at > window_end):
            retry_at = None
        values: dict[str, Any] = {
            "status": "failed", "claimed_until": None, "error": error[:2000],
            "failures": ReportRun.failures + 1, "next_attempt_at": retry_at,
            "finished_at": now if retry_at is None else None,
        }
        self._record(claim, values)
        return retry_at

    def _record(self, claim: Claim, values: dict[str, Any]) -> bool:
        with self.store.session() as s:
            result = s.execute(update(ReportRun).where(and_(
                ReportRun.id == claim.row_id, ReportRun.status == "claimed",
                ReportRun.claimed_by == self.replica, ReportRun.claimed_until == claim.until,
            )).values(**values))
            assert isinstance(result, CursorResult)  # an UPDATE has a rowcount
            if result.rowcount == 1:
                return True
        log.warning("report %s: the claim ended before its result (%s) was recorded; "
                    "whoever holds it now decides", claim.period.key, values["status"])
        return False

    def row(self, period: Period) -> ReportRun | None:
        with self.store.session() as s:
            row = s.scalars(select(ReportRun).where(
                ReportRun.report == self.report, ReportRun.period == period.key)).one_or_none()
            if row is not None:
                s.expunge(row)
            return row


def _claimable(row: ReportRun, now: datetime, max_attempts: int | None) -> bool:
    """Whether ``row`` may be taken over; ``max_attempts`` None: by hand, whatever the
    retry schedule says."""
    if max_attempts is not None and row.attempts >= max_attempts:
        return False
    if row.status == "claimed":
        return row.claimed_until is not None and row.claimed_until < now
    if row.status == "failed":
        return max_attempts is None or (row.next_attempt_at is not None
                                        and row.next_attempt_at <= now)
    return False  # sent
