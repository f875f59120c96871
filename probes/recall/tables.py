"""Tables of the recall feature (added by migration 0002). Listed by the composition
root, so Alembic and the model-vs-DDL test see one metadata.

- ``recall_baselines``: runs a user pinned as the baseline of a recall probe
  (``ragmon baseline pin RUN_ID``); the newest pin of a probe wins. Without a pin, the
  baseline is the probe's first healthy run of the current golden set version.
- ``recall_golden_sets``: every golden set version that loaded cleanly, so that a file
  that disappears or is corrupted mid-deployment can fall back to the last good version
  (only when the config says ``keep_last_good: true``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ragmon.monitor.store.models import Base, BigId, UTCDateTime


class RecallBaseline(Base):
    """A pinned baseline run of a recall probe."""

    __tablename__ = "recall_baselines"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    probe: Mapped[str] = mapped_column(String(200))
    instance: Mapped[str] = mapped_column(String(200), default="", server_default="")
    run_id: Mapped[int] = mapped_column(BigId, ForeignKey("probe_runs.id", ondelete="CASCADE"))
    pinned_at: Mapped[datetime] = mapped_column(UTCDateTime())
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_recall_baselines_probe", "probe", "instance", "pinned_at"),)


class GoldenSetVersion(Base):
    """One cleanly loaded version of a golden set (its parsed queries as JSON)."""

    __tablename__ = "recall_golden_sets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    queries: Mapped[list[Any]] = mapped_column(JSON, default=list)

    __table_args__ = (
        UniqueConstraint("name", "version", name="uq_recall_golden_sets_name_version"),
    )
