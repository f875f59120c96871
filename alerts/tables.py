"""Tables of the alerts feature: rule state (migration 0001) and the delivery outbox
(migration 0004). The composition root lists this module, so Alembic and the
model-vs-DDL test see one metadata."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ragmon.monitor.store.models import Base, BigId, UTCDateTime


class AlertState(Base):
    """State of one alert instance (rule + label set): inactive, pending, firing, resolved."""

    __tablename__ = "alert_states"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    rule: Mapped[str] = mapped_column(String(200))
    #: The sidecar whose runs this state follows ("" for standalone replicas; 0007).
    instance: Mapped[str] = mapped_column(String(200), default="", server_default="")
    fingerprint: Mapped[str] = mapped_column(String(64))
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16))
    active_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_evaluated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (UniqueConstraint("rule", "instance", "fingerprint",
                                       name="uq_alert_states_rule_fp"),)


class AlertNotification(Base):
    """The delivery outbox: one row per alert event and sink.

    ``dedup_key`` is unique, so when replicas sharing the store evaluate the same transition
    only one row exists; a worker claims a row (status pending -> sending, with a lease)
    in one conditional UPDATE before it sends, so each notification goes out once.
    """

    __tablename__ = "alert_notifications"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    dedup_key: Mapped[str] = mapped_column(String(64), unique=True)
    rule: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))
    sink: Mapped[str] = mapped_column(String(200))
    event: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_alert_notifications_due", "status", "next_attempt_at"),)
