"""instances: runs and per-probe state kept per (probe, instance)

Sidecars sharing one store each probe their own pod's index under their own name
(``deployment.instance``). Every run, recall baseline pin, reference sample, drift
statistic, drift reservoir and alert state names its instance; existing rows get the
empty instance of a standalone daemon, so they keep working unchanged. The lookups'
indexes and the keys of the reservoir and of the alert state take the instance after
the probe (rule).

The downgrade refuses while any of these tables holds a sidecar's rows (a non-empty
instance): without the column they would merge into one history, and the old keys of the
reservoir and of the alert state would collide.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLES = ("probe_runs", "recall_baselines", "reference_samples", "drift_statistics",
          "drift_reservoir", "drift_reservoir_state", "alert_states")

#: (name, table, columns before, columns after)
INDEXES = (
    ("ix_probe_runs_probe_started", "probe_runs", ["probe", "started_at"],
     ["probe", "instance", "started_at"]),
    ("ix_probe_runs_probe_id", "probe_runs", ["probe", "id"], ["probe", "instance", "id"]),
    ("ix_probe_runs_probe_status_id", "probe_runs", ["probe", "status", "id"],
     ["probe", "instance", "status", "id"]),
    ("ix_probe_runs_probe_golden", "probe_runs", ["probe", "golden_version", "status", "id"],
     ["probe", "instance", "golden_version", "status", "id"]),
    ("ix_recall_baselines_probe", "recall_baselines", ["probe", "pinned_at"],
     ["probe", "instance", "pinned_at"]),
    ("ix_reference_samples_probe", "reference_samples", ["probe", "source", "created_at"],
     ["probe", "instance", "source", "created_at"]),
    ("ix_drift_statistics_probe", "drift_statistics", ["probe", "method", "window_end"],
     ["probe", "instance", "method", "window_end"]),
    ("ix_drift_statistics_probe_method_id", "drift_statistics", ["probe", "method", "id"],
     ["probe", "instance", "method", "id"]),
)

#: Tables whose primary key takes the instance: (table, key before, key after).
KEYS = (
    ("drift_reservoir", ["probe", "slot"], ["probe", "instance", "slot"]),
    ("drift_reservoir_state", ["probe"], ["probe", "instance"]),
)


def _instance() -> sa.Column[str]:
    return sa.Column("instance", sa.String(200), nullable=False, server_default="")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(_instance())
    _indexes(after=True)
    _keys(after=True)
    with op.batch_alter_table("alert_states") as batch:
        batch.drop_constraint("uq_alert_states_rule_fp", type_="unique")
        batch.create_unique_constraint("uq_alert_states_rule_fp",
                                       ["rule", "instance", "fingerprint"])


def downgrade() -> None:
    _refuse_sidecar_rows()
    with op.batch_alter_table("alert_states") as batch:
        batch.drop_constraint("uq_alert_states_rule_fp", type_="unique")
        batch.create_unique_constraint("uq_alert_states_rule_fp", ["rule", "fingerprint"])
    _keys(after=False)
    _indexes(after=False)
    for table in reversed(TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("instance")


def _refuse_sidecar_rows() -> None:
    """Without the instance column, sidecars' rows would merge into one history (and their
    reservoirs and alert states collide on the old keys): refuse before changing anything."""
    from ragmon.monitor.errors import SchemaError

    bind, tables, instances = op.get_bind(), [], set()
    for table in sorted(TABLES):
        found = bind.execute(sa.text(
            f"SELECT DISTINCT instance FROM {table} WHERE instance <> ''")).scalars().all()
        if found:
            tables.append(table)
            instances.update(found)
    if not tables:
        return
    names = sorted(instances)
    shown = ", ".join(repr(n) for n in names[:5]) + (
        f" and {len(names) - 5} more" if len(names) > 5 else "")
    raise SchemaError(
        f"cannot downgrade the schema below revision 0007: {', '.join(tables)} hold rows of "
        f"sidecar instances {shown}, which would merge into one history without the "
        "instance column; delete or export those instances' rows first (their instance is "
        "not '')")


def _indexes(after: bool) -> None:
    for name, table, before, later in INDEXES:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, later if after else before)


def _keys(after: bool) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, before, later in KEYS:
        columns = later if after else before
        if sqlite:  # SQLite cannot alter a key: the table is copied into one with the new key
            with op.batch_alter_table(table, recreate="always",
                                      copy_from=_keyed(table, columns)):
                pass
        else:
            op.drop_constraint(f"{table}_pkey", table, type_="primary")
            op.create_primary_key(f"{table}_pkey", table, columns)


def _keyed(table: str, key: list[str]) -> sa.Table:
    """The reservoir table ``table`` (its 0003 columns and the instance) keyed on ``key``."""
    from ragmon.monitor.store.models import UTCDateTime

    columns = {
        "drift_reservoir": [
            sa.Column("probe", sa.String(200)), sa.Column("slot", sa.Integer()),
            sa.Column("received_at", UTCDateTime(), nullable=False),
            sa.Column("item_id", sa.String(400)), sa.Column("text", sa.Text()),
            sa.Column("vector", sa.LargeBinary())],
        "drift_reservoir_state": [
            sa.Column("probe", sa.String(200)),
            sa.Column("window_start", UTCDateTime(), nullable=False),
            sa.Column("seen", sa.BigInteger(), nullable=False),
            sa.Column("fingerprint", sa.String(64)), sa.Column("tail", sa.JSON(), nullable=False)],
    }[table]
    columns.append(_instance())
    for column in columns:
        column.primary_key = column.name in key
        column.nullable = column.nullable and not column.primary_key
    return sa.Table(table, sa.MetaData(), *columns)
