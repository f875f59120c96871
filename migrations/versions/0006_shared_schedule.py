"""shared schedule: slot claims, leases, and who ran each run

Replicas on one PostgreSQL share each probe's schedule: a slot (probe, instance, scheduled
fire time) is run by the one replica whose INSERT into ``probe_slots`` succeeded. Jobs that
one replica at a time may run (retention, tailing a JSONL file) hold a row in ``leases``.
Each run row names the replica that ran it and the slot it ran.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ragmon.monitor.store.models import BigId, UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "probe_slots",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("probe", sa.String(200), nullable=False),
        sa.Column("instance", sa.String(200), nullable=False, server_default=""),
        sa.Column("slot", UTCDateTime(), nullable=False),
        sa.Column("claimed_by", sa.String(200), nullable=False),
        sa.Column("claimed_at", UTCDateTime(), nullable=False),
        sa.Column("lease_until", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("run_id", BigId, nullable=True),
        sa.UniqueConstraint("probe", "instance", "slot", name="uq_probe_slots_key"),
    )
    op.create_index("ix_probe_slots_slot", "probe_slots", ["slot", "id"])
    op.create_table(
        "leases",
        sa.Column("name", sa.String(400), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("acquired_at", UTCDateTime(), nullable=False),
        sa.Column("lease_until", UTCDateTime(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    with op.batch_alter_table("probe_runs") as batch:
        batch.add_column(sa.Column("replica", sa.String(200), nullable=True))
        batch.add_column(sa.Column("slot", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("probe_runs") as batch:
        batch.drop_column("slot")
        batch.drop_column("replica")
    op.drop_table("leases")
    op.drop_index("ix_probe_slots_slot", table_name="probe_slots")
    op.drop_table("probe_slots")
