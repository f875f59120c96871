"""initial schema: probe runs, values, per-query results, references, alert states, reports

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ragmon.monitor.store.models import BigId, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "probe_runs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("probe", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("target", sa.String(200), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("golden_version", sa.String(64), nullable=True),
        sa.Column("embedder_fingerprint", sa.String(64), nullable=True),
        sa.Column("target_fingerprint", sa.String(64), nullable=True),
    )
    op.create_index("ix_probe_runs_probe_started", "probe_runs", ["probe", "started_at"])
    op.create_table(
        "run_values",
        sa.Column(
            "run_id", BigId, sa.ForeignKey("probe_runs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("labels", sa.String(400), primary_key=True),
        sa.Column("value", sa.Float(), nullable=False),
    )
    op.create_table(
        "query_results",
        sa.Column(
            "run_id", BigId, sa.ForeignKey("probe_runs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("query_id", sa.String(400), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    op.create_table(
        "reference_samples",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("probe", sa.String(200), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("embedder_fingerprint", sa.String(64), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("vectors", sa.LargeBinary(), nullable=False),
        sa.Column("item_ids", sa.JSON(), nullable=False),
        sa.Column("window_start", UTCDateTime(), nullable=True),
        sa.Column("window_end", UTCDateTime(), nullable=True),
        sa.Column("pinned", sa.Boolean(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
    )
    op.create_index(
        "ix_reference_samples_probe", "reference_samples", ["probe", "source", "created_at"]
    )
    op.create_table(
        "alert_states",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("active_since", UTCDateTime(), nullable=True),
        sa.Column("fired_at", UTCDateTime(), nullable=True),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("last_evaluated_at", UTCDateTime(), nullable=True),
        sa.Column("last_notified_at", UTCDateTime(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.UniqueConstraint("rule", "fingerprint", name="uq_alert_states_rule_fp"),
    )
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


def downgrade() -> None:
    op.drop_table("report_runs")
    op.drop_table("alert_states")
    op.drop_index("ix_reference_samples_probe", table_name="reference_samples")
    op.drop_table("reference_samples")
    op.drop_table("query_results")
    op.drop_table("run_values")
    op.drop_index("ix_probe_runs_probe_started", table_name="probe_runs")
    op.drop_table("probe_runs")
