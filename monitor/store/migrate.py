"""Schema management: Alembic upgrade (under a PostgreSQL advisory lock) and head checks."""

from __future__ import annotations

import threading
from importlib.resources import files
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from ragmon.monitor.errors import SchemaError

# Alembic's ``context`` and ``op`` are module-level proxies: two migrations in one process
# must not overlap. Replicas (separate processes) are serialised by the advisory lock in
# migrations/env.py instead.
_ALEMBIC_LOCK = threading.Lock()


def script_location() -> Path:
    """The migrations folder, wherever ragmon is installed (source tree or wheel)."""
    return Path(str(files("ragmon.migrations")))


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location()))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise SchemaError(f"the migrations have {len(heads)} heads ({heads}); expected one")
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_known(engine: Engine, safe_url: str) -> str | None:
    """Refuse a schema newer than this ragmon knows; return the current revision."""
    current = current_revision(engine)
    script = ScriptDirectory.from_config(alembic_config())
    if current is not None and not _known(script, current):
        raise SchemaError(
            f"store {safe_url} has schema revision {current!r}, newer than this ragmon knows "
            f"(head {head_revision()!r}); upgrade ragmon, or point store.url at another database"
        )
    return current


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except Exception:  # alembic raises several kinds for an unknown revision
        return False


def upgrade(engine: Engine, safe_url: str, revision: str = "head") -> None:
    check_known(engine, safe_url)
    with _ALEMBIC_LOCK, engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Waiting for another replica's upgrade (the advisory lock) and the upgrade
            # itself may take longer than store.statement_timeout.
            conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
        command.upgrade(alembic_config(conn), revision)


def downgrade(engine: Engine, revision: str) -> None:
    with _ALEMBIC_LOCK, engine.begin() as conn:
        command.downgrade(alembic_config(conn), revision)
