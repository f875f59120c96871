"""drift tables: per-method statistics, cluster shifts, the persisted query reservoir

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ragmon.monitor.store.models import BigId, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drift_statistics",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("probe", sa.String(200), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("window_start", UTCDateTime(), nullable=True),
        sa.Column("window_end", UTCDateTime(), nullable=False),
        sa.Column("reference_id", BigId, nullable=True),
        sa.Column("n_reference", sa.Integer(), nullable=False),
        sa.Column("n_current", sa.Integer(), nullable=False),
        sa.Column("statistic", sa.Float(), nullable=False),
        sa.Column("p_value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("drifted", sa.Boolean(), nullable=False),
        sa.Column("alarm", sa.Boolean(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
    )
    op.create_index(
        "ix_drift_statistics_probe", "drift_statistics", ["probe", "method", "window_end"]
    )
    op.create_table(
        "drift_cluster_shifts",
        sa.Column(
            "statistic_id", BigId, sa.ForeignKey("drift_statistics.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("direction", sa.String(8), primary_key=True),
        sa.Column("rank", sa.Integer(), primary_key=True),
        sa.Column("cluster", sa.Integer(), nullable=False),
        sa.Column("reference_share", sa.Float(), nullable=False),
        sa.Column("current_share", sa.Float(), nullable=False),
        sa.Column("change", sa.Float(), nullable=False),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("examples", sa.JSON(), nullable=False),
    )
    op.create_table(
        "drift_reservoir",
        sa.Column("probe", sa.String(200), primary_key=True),
        sa.Column("slot", sa.Integer(), primary_key=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("item_id", sa.String(400), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("vector", sa.LargeBinary(), nullable=True),
    )
    op.create_table(
        "drift_reservoir_state",
        sa.Column("probe", sa.String(200), primary_key=True),
        sa.Column("window_start", UTCDateTime(), nullable=False),
        sa.Column("seen", sa.BigInteger(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=True),
        sa.Column("tail", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("drift_reservoir_state")
    op.drop_table("drift_reservoir")
    op.drop_table("drift_cluster_shifts")
    op.drop_index("ix_drift_statistics_probe", table_name="drift_statistics")
    op.drop_table("drift_statistics")
