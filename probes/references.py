"""Reference samples of embeddings, shared by the canary and the drift probe.

A reference is a window of vectors kept as one float32 row-major blob, with the embedder
fingerprint that produced it (vectors of different pipelines are never compared), the item
ids, the time range it covers and whether a user pinned it. The table is created by
migration 0001.

Retention (:class:`ReferenceRetention`) deletes samples created before the cutoff, except
pinned ones and the newest of each probe and source created before it: that one may still be
in use (a canary's reference, the sample recall runs after the cutoff name); other parts
keep more (the samples a pinned recall baseline names, a rolling drift reference's windows).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import JSON, Boolean, Index, Integer, LargeBinary, String, func, select
from sqlalchemy.orm import Mapped, mapped_column

from ragmon.monitor.common import jsonable
from ragmon.monitor.store import Store
from ragmon.monitor.store.models import Base, BigId, UTCDateTime
from ragmon.monitor.store.retention import Keep, RetentionJob, RetentionPart


class ReferenceSample(Base):
    """A reference window of embeddings: float32 row-major blob plus what produced it."""

    __tablename__ = "reference_samples"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    probe: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    embedder_fingerprint: Mapped[str] = mapped_column(String(64))
    dimension: Mapped[int] = mapped_column(Integer)
    n: Mapped[int] = mapped_column(Integer)
    vectors: Mapped[bytes] = mapped_column(LargeBinary)
    item_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (
        Index("ix_reference_samples_probe", "probe", "source", "created_at"),
        # Migration 0005: retention's time-ordered batches.
        Index("ix_reference_samples_created", "created_at", "id"),
    )


@dataclass
class Reference:
    """A stored reference window of embeddings."""

    id: int
    probe: str
    source: str
    created_at: datetime
    embedder_fingerprint: str
    vectors: np.ndarray
    item_ids: list[Any]
    pinned: bool
    details: dict[str, Any]

    @classmethod
    def from_row(cls, row: ReferenceSample) -> Reference:
        vectors = np.frombuffer(row.vectors, dtype=np.float32).reshape(row.n, row.dimension)
        return cls(
            id=row.id, probe=row.probe, source=row.source, created_at=row.created_at,
            embedder_fingerprint=row.embedder_fingerprint, vectors=vectors.copy(),
            item_ids=list(row.item_ids), pinned=row.pinned, details=dict(row.details),
        )


def save_reference(
    store: Store,
    probe: str,
    source: str,
    embedder_fingerprint: str,
    vectors: np.ndarray,
    item_ids: list[Any],
    *,
    pinned: bool = False,
    window: tuple[datetime, datetime] | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    """Store a reference window; returns its id."""
    arr = np.ascontiguousarray(vectors, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"reference vectors must be 2-D, got shape {arr.shape}")
    with store.session() as s:
        row = ReferenceSample(
            probe=probe,
            source=source,
            created_at=datetime.now(UTC),
            embedder_fingerprint=embedder_fingerprint,
            dimension=int(arr.shape[1]),
            n=int(arr.shape[0]),
            vectors=arr.tobytes(),
            item_ids=jsonable(list(item_ids)),
            window_start=window[0] if window else None,
            window_end=window[1] if window else None,
            pinned=pinned,
            details=jsonable(details or {}),
        )
        s.add(row)
        s.flush()
        return row.id


def latest_reference(store: Store, probe: str, source: str) -> Reference | None:
    """The pinned reference of a probe, else its newest one."""
    with store.session() as s:
        row = s.scalars(
            select(ReferenceSample)
            .where(ReferenceSample.probe == probe, ReferenceSample.source == source)
            .order_by(ReferenceSample.pinned.desc(), ReferenceSample.id.desc())
            .limit(1)
        ).first()
        return None if row is None else Reference.from_row(row)


class ReferenceRetention(RetentionPart):
    """Deletes reference samples created before the cutoff, except pinned ones, the newest
    of each probe and source created before it, and what other parts keep."""

    name = "references"

    def prune(self, job: RetentionJob) -> None:
        with job.store.session() as s:
            current = list(s.scalars(select(func.max(ReferenceSample.id))
                                     .where(ReferenceSample.created_at < job.cutoff)
                                     .group_by(ReferenceSample.probe, ReferenceSample.source)))
        keep: list[Keep] = [("pinned reference(s)", ReferenceSample.pinned.is_(True))]
        if current:
            keep.append(("reference(s) still in use (the newest of a probe and source)",
                         ReferenceSample.id.in_(current)))
        job.delete_older(ReferenceSample, ReferenceSample.created_at,
                         keep=keep + job.keep(ReferenceSample))


__all__ = [
    "Reference", "ReferenceRetention", "ReferenceSample", "latest_reference", "save_reference",
]
