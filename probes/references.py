"""Reference samples of embeddings, shared by the canary and the drift probe.

A reference is a window of vectors kept as one float32 row-major blob, with the embedder
fingerprint that produced it (vectors of different pipelines are never compared), the item
ids, the time range it covers and whether a user pinned it. Samples are kept per (probe,
instance): a sidecar (``deployment.instance``) reads and writes its own, and compares with the
fleet's while it has none (:func:`fleet_reference`). The table is created by migration 0001.

Retention (:class:`ReferenceRetention`) deletes samples created before the cutoff, except
pinned ones and the newest of each probe, instance and source created before it: that one
may still be in use (a canary's reference, the sample recall runs after the cutoff name);
other parts keep more (the samples a pinned recall baseline names, a rolling drift
reference's windows).
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
    instance: Mapped[str] = mapped_column(String(200), default="", server_default="")
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
        Index("ix_reference_samples_probe", "probe", "instance", "source", "created_at"),
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
    holdout: np.ndarray | None = None
    """Rows of the same traffic held out of ``vectors`` to simulate its null (or None)."""
    instance: str = ""
    """The instance that stored it (``deployment.instance``; "" for standalone daemons)."""

    @classmethod
    def from_row(cls, row: ReferenceSample) -> Reference:
        vectors = np.frombuffer(row.vectors, dtype=np.float32).reshape(row.n, row.dimension)
        details, ids, holdout = dict(row.details), list(row.item_ids), None
        n = int(details.get("reference_rows") or row.n)
        if n < row.n:
            holdout, vectors = vectors[n:], vectors[:n]
            ids = ids[:n]
            details["texts"] = list(details.get("texts") or [])[:n]
        return cls(
            id=row.id, probe=row.probe, source=row.source, created_at=row.created_at,
            embedder_fingerprint=row.embedder_fingerprint, vectors=vectors.copy(),
            item_ids=ids, pinned=row.pinned, details=details,
            holdout=None if holdout is None else holdout.copy(), instance=row.instance,
        )

    @property
    def pool_rows(self) -> int:
        """Rows stored: the reference sample and its holdout."""
        return len(self.vectors) + (0 if self.holdout is None else len(self.holdout))


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
            instance=store.instance,
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


def extend_reference(store: Store, ref_id: int, vectors: np.ndarray, item_ids: list[Any],
                     texts: list[str | None], window_end: datetime | None) -> int:
    """Append a window to a reference pool that is still filling; returns its rows."""
    with store.session() as s:
        row = s.get(ReferenceSample, ref_id, with_for_update=True)
        if row is None:
            raise LookupError(f"reference {ref_id} does not exist")
        arr = np.ascontiguousarray(vectors, dtype=np.float32)
        if arr.shape[1] != row.dimension:
            raise ValueError(f"reference {ref_id} has dimension {row.dimension}, the window "
                             f"{arr.shape[1]}")
        details = dict(row.details)
        old = list(details.get("texts") or [None] * row.n)
        details["texts"] = jsonable(old + list(texts))
        row.vectors = row.vectors + arr.tobytes()
        row.item_ids = jsonable(list(row.item_ids) + list(item_ids))
        row.n = row.n + int(arr.shape[0])
        row.window_end = window_end or row.window_end
        row.details = details
        return row.n


def arrange_reference(store: Store, ref_id: int, order: np.ndarray,
                      details: dict[str, Any]) -> None:
    """Reorder a pool's rows (the reference sample first) and merge ``details`` in."""
    with store.session() as s:
        row = s.get(ReferenceSample, ref_id, with_for_update=True)
        if row is None:
            raise LookupError(f"reference {ref_id} does not exist")
        vectors = np.frombuffer(row.vectors, np.float32).reshape(row.n, row.dimension)
        row.vectors = np.ascontiguousarray(vectors[order]).tobytes()
        ids = list(row.item_ids)
        row.item_ids = [ids[i] for i in order] if len(ids) == row.n else ids
        merged = dict(row.details)
        texts = list(merged.get("texts") or [])
        if len(texts) == row.n:
            merged["texts"] = [texts[i] for i in order]
        merged.update(jsonable(details))
        row.details = merged


def latest_reference(store: Store, probe: str, source: str) -> Reference | None:
    """The pinned reference of a probe (of this store's instance), else its newest one."""
    with store.session() as s:
        row = s.scalars(
            select(ReferenceSample)
            .where(ReferenceSample.probe == probe, ReferenceSample.instance == store.instance,
                   ReferenceSample.source == source)
            .order_by(ReferenceSample.pinned.desc(), ReferenceSample.id.desc())
            .limit(1)
        ).first()
        return None if row is None else Reference.from_row(row)


def fleet_reference(store: Store, probe: str, source: str) -> Reference | None:
    """The reference an instance without one of its own compares with: the newest pinned
    reference of the probe stored by any other instance, else the newest one.

    A sidecar's instance is its pod's name by default, and a rollout names its pods anew:
    the new pod has no reference of its own, and capturing one from its first run would
    take the new pipeline as the reference, missing the change the rollout shipped. Its
    first run compares with the fleet's instead (the run says so), then captures its own.
    """
    with store.session() as s:
        row = s.scalars(
            select(ReferenceSample)
            .where(ReferenceSample.probe == probe, ReferenceSample.instance != store.instance,
                   ReferenceSample.source == source)
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
                                     .group_by(ReferenceSample.probe, ReferenceSample.instance,
                                               ReferenceSample.source)))
        keep: list[Keep] = [("pinned reference(s)", ReferenceSample.pinned.is_(True))]
        if current:
            keep.append(("reference(s) still in use (the newest of a probe and source)",
                         ReferenceSample.id.in_(current)))
        job.delete_older(ReferenceSample, ReferenceSample.created_at,
                         keep=keep + job.keep(ReferenceSample))


__all__ = [
    "Reference", "ReferenceRetention", "ReferenceSample", "arrange_reference",
    "extend_reference", "fleet_reference", "latest_reference", "save_reference",
]
