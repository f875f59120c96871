"""history indexes: newest runs, baselines, alarm state and retention batches

The newest run and the newest successful run of a probe (read at every /metrics scrape),
the recall baseline and the drift alarm state were found by sorting all of a probe's
history; retention deleted by a list of ids. These indexes serve each lookup directly and
let retention delete in time-ordered batches.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_probe_runs_probe_id", "probe_runs", ["probe", "id"]),
    ("ix_probe_runs_probe_status_id", "probe_runs", ["probe", "status", "id"]),
    ("ix_probe_runs_probe_golden", "probe_runs", ["probe", "golden_version", "status", "id"]),
    ("ix_probe_runs_finished", "probe_runs", ["finished_at", "id"]),
    ("ix_drift_statistics_probe_method_id", "drift_statistics", ["probe", "method", "id"]),
    ("ix_drift_statistics_window_end", "drift_statistics", ["window_end", "id"]),
    ("ix_reference_samples_created", "reference_samples", ["created_at", "id"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
