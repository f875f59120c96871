"""Tables of the drift feature (added by migration 0003). Listed by the composition
root, so Alembic and the model-vs-DDL test see one metadata.

- ``drift_statistics``: one row per drift probe run and method: the statistic, p-value or
  threshold, "this window differs" and "alarm" (the persistence rule), with evidence.
- ``drift_cluster_shifts``: the clusters that grew or shrank most in a window, with example
  texts from it (kept in SQL, never in metric labels).
- ``drift_reservoir``: the current window's reservoir sample of query traffic, one row per
  slot, so that a restart loses at most what arrived since the last flush.
- ``drift_reservoir_state``: per probe, when the current window started, how many items
  it has seen (reservoir sampling needs the count), and where the JSONL tail stands.
Reference windows themselves live in ``reference_samples`` (migration 0001).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ragmon.monitor.store.models import Base, BigId, UTCDateTime


class DriftStatistic(Base):
    """The verdict of one method on one window of one drift probe."""

    __tablename__ = "drift_statistics"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    probe: Mapped[str] = mapped_column(String(200))
    instance: Mapped[str] = mapped_column(String(200), default="", server_default="")
    source: Mapped[str] = mapped_column(String(32))
    method: Mapped[str] = mapped_column(String(64))
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    window_end: Mapped[datetime] = mapped_column(UTCDateTime())
    reference_id: Mapped[int | None] = mapped_column(BigId)
    n_reference: Mapped[int] = mapped_column(Integer)
    n_current: Mapped[int] = mapped_column(Integer)
    statistic: Mapped[float] = mapped_column(Float)
    p_value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    drifted: Mapped[bool] = mapped_column(Boolean)
    alarm: Mapped[bool] = mapped_column(Boolean)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (
        Index("ix_drift_statistics_probe", "probe", "instance", "method", "window_end"),
        # Migration 0005: the alarm state (newest row of a probe and method) and retention.
        Index("ix_drift_statistics_probe_method_id", "probe", "instance", "method", "id"),
        Index("ix_drift_statistics_window_end", "window_end", "id"),
    )


class DriftClusterShift(Base):
    """A cluster that grew or shrank in a window, with example texts from the window."""

    __tablename__ = "drift_cluster_shifts"

    statistic_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("drift_statistics.id", ondelete="CASCADE"), primary_key=True
    )
    direction: Mapped[str] = mapped_column(String(8), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster: Mapped[int] = mapped_column(Integer)
    reference_share: Mapped[float] = mapped_column(Float)
    current_share: Mapped[float] = mapped_column(Float)
    change: Mapped[float] = mapped_column(Float)
    label: Mapped[str | None] = mapped_column(Text)
    examples: Mapped[list[Any]] = mapped_column(JSON, default=list)


class DriftReservoirItem(Base):
    """One slot of a probe's reservoir sample: the text and/or vector of one query."""

    __tablename__ = "drift_reservoir"

    probe: Mapped[str] = mapped_column(String(200), primary_key=True)
    instance: Mapped[str] = mapped_column(String(200), primary_key=True, default="",
                                          server_default="")
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    item_id: Mapped[str | None] = mapped_column(String(400))
    text: Mapped[str | None] = mapped_column(Text)
    vector: Mapped[bytes | None] = mapped_column(LargeBinary)


class DriftReservoirState(Base):
    """Where a probe's current window stands: start, items seen, the JSONL tail position."""

    __tablename__ = "drift_reservoir_state"

    probe: Mapped[str] = mapped_column(String(200), primary_key=True)
    instance: Mapped[str] = mapped_column(String(200), primary_key=True, default="",
                                          server_default="")
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    seen: Mapped[int] = mapped_column(BigInteger)
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    tail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
