"""The foundation's SQLAlchemy 2.x models and the declarative ``Base`` every feature's
tables share. Alembic (migrations/) owns the schema; the models must match it (a test
compares them with the migrated DDL on SQLite and PostgreSQL). Each feature keeps its own
tables beside its queries (``probes/recall/tables.py``, ``probes/drift/tables.py``,
``alerts/tables.py``, ``probes/references.py``); the composition root lists them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class ProbeRun(Base):
    """One execution of one probe. Written in one transaction with its values and queries."""

    __tablename__ = "probe_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    probe: Mapped[str] = mapped_column(String(200))
    #: The sidecar that ran it ("" for standalone replicas); migration 0007.
    instance: Mapped[str] = mapped_column(String(200), default="", server_default="")
    kind: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    golden_version: Mapped[str | None] = mapped_column(String(64))
    embedder_fingerprint: Mapped[str | None] = mapped_column(String(64))
    target_fingerprint: Mapped[str | None] = mapped_column(String(64))
    #: Migration 0006: the replica that ran it and the schedule slot it ran (None for a run
    #: started by hand, outside the schedule).
    replica: Mapped[str | None] = mapped_column(String(200))
    slot: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_probe_runs_probe_started", "probe", "instance", "started_at"),
        # Migration 0005: the newest run and the newest successful run of a probe (scrapes,
        # recall baselines) and retention's time-ordered batches, each found by an index
        # instead of a scan of the history; per instance since migration 0007.
        Index("ix_probe_runs_probe_id", "probe", "instance", "id"),
        Index("ix_probe_runs_probe_status_id", "probe", "instance", "status", "id"),
        Index("ix_probe_runs_probe_golden", "probe", "instance", "golden_version", "status",
              "id"),
        Index("ix_probe_runs_finished", "finished_at", "id"),
    )


class RunValue(Base):
    """A numeric result of a run; ``labels`` is canonical ``k=10,mode=live`` (bounded keys)."""

    __tablename__ = "run_values"

    run_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("probe_runs.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    labels: Mapped[str] = mapped_column(String(400), primary_key=True, default="")
    value: Mapped[float] = mapped_column(Float)


class QueryResult(Base):
    """Per-query outcome of a run (ranks, hits, per-k metrics); never exported as labels."""

    __tablename__ = "query_results"

    run_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("probe_runs.id", ondelete="CASCADE"), primary_key=True
    )
    query_id: Mapped[str] = mapped_column(String(400), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ProbeSlot(Base):
    """A claimed slot of the shared schedule: one scheduled fire time of one probe (of one
    instance). The unique key makes claiming it one INSERT that only one replica wins; the
    lease lets another replica take it over when its claimer dies (migration 0006)."""

    __tablename__ = "probe_slots"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    probe: Mapped[str] = mapped_column(String(200))
    instance: Mapped[str] = mapped_column(String(200), default="", server_default="")
    slot: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str] = mapped_column(String(200))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    run_id: Mapped[int | None] = mapped_column(BigId)

    __table_args__ = (
        UniqueConstraint("probe", "instance", "slot", name="uq_probe_slots_key"),
        Index("ix_probe_slots_slot", "slot", "id"),
    )


class Lease(Base):
    """A job that one replica at a time may run (tailing one JSONL file): held by
    ``holder`` until ``lease_until``, renewed while it runs (migration 0006)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(400), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime] = mapped_column(UTCDateTime())
    position: Mapped[int | None] = mapped_column(BigInteger)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
