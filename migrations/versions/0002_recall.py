"""recall tables: pinned baselines and last good golden set versions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ragmon.monitor.store.models import BigId, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recall_baselines",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("probe", sa.String(200), nullable=False),
        sa.Column(
            "run_id", BigId, sa.ForeignKey("probe_runs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("pinned_at", UTCDateTime(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
    )
    op.create_index("ix_recall_baselines_probe", "recall_baselines", ["probe", "pinned_at"])
    op.create_table(
        "recall_golden_sets",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("queries", sa.JSON(), nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_recall_golden_sets_name_version"),
    )


def downgrade() -> None:
    op.drop_table("recall_golden_sets")
    op.drop_index("ix_recall_baselines_probe", table_name="recall_baselines")
    op.drop_table("recall_baselines")
