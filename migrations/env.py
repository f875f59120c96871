"""Alembic environment. ragmon passes an open connection in ``config.attributes``; the
``alembic`` command line can be used too, with ``-x url=...`` or RAGMON_STORE__URL."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine

from ragmon.monitor.app import metadata

config = context.config
target_metadata = metadata()

# Any constant works; it only has to be the same for every ragmon replica.
ADVISORY_LOCK_ID = 0x7261676D6F6E  # "ragmon"


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Replicas starting together queue here; the later ones find the schema at head.
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK_ID})")
        elif connection.dialect.name == "sqlite" and not connection.connection.in_transaction:
            # The same for daemons sharing one SQLite file: the driver would run each DDL
            # statement on its own, so two daemons migrating together both created tables.
            # The write lock, taken first, makes the whole upgrade one transaction.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get(
        "RAGMON_STORE__URL"
    )
    if not url:
        raise SystemExit("give the database with -x url=... or RAGMON_STORE__URL")
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)
        conn.commit()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
