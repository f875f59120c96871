"""report runs: one claim per (report, period), with a lease, retries and failures

The table of migration 0001 was never written: it is replaced by one that can carry the
claim (unique per report and period, held by a replica until its lease ends), the period's
bounds, the retry schedule and the failed attempts (exported as a counter).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ragmon.monitor.store.models import BigId, UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("report_runs")
    op.create_table(
        "report_runs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("report", sa.String(64), nullable=False),
        sa.Column("period", sa.String(64), nullable=False),
        sa.Column("since", UTCDateTime(), nullable=False),
        sa.Column("until", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        sa.Column("claimed_until", UTCDateTime(), nullable=True),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.UniqueConstraint("report", "period", name="uq_report_runs_report_period"),
    )


def downgrade() -> None:
    op.drop_table("report_runs")
    op.create_table(
        "report_runs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("period", sa.String(32), nullable=False, unique=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
    )
