"""What the drift feature keeps in SQL: the reservoir of query traffic, reference windows
(in ``reference_samples``), per-method statistics and cluster shifts.

The reservoir is Vitter's algorithm R over the current window: the first ``capacity``
items fill the slots, the i-th item after that replaces a random slot with probability
capacity/i, so every item seen in the window is equally likely to be in the sample, with
memory bounded by ``capacity``. Every batch is one transaction, so a restart loses at
most what was being written.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import and_, delete, func, or_, select, update

from ragmon.monitor.store import Store, index_prefix, insert_ignore
from ragmon.monitor.store.retention import Keep, RetentionJob, RetentionPart
from ragmon.probes.drift.tables import (
    DriftClusterShift,
    DriftReservoirItem,
    DriftReservoirState,
    DriftStatistic,
)
from ragmon.probes.references import (
    Reference,
    ReferenceSample,
    fleet_reference,
    latest_reference,
)

log = logging.getLogger("ragmon.drift.state")
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def probe_lock(probe: str) -> threading.Lock:
    """One lock per probe: HTTP ingest threads, the tail job and runs share the reservoir."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(probe, threading.Lock())


@dataclass
class Item:
    """One query: its text, its vector (when the app sent one), an optional id."""

    text: str | None = None
    vector: np.ndarray | None = None
    item_id: str | None = None


@dataclass
class Window:
    """The current window taken out of the reservoir."""

    start: datetime
    end: datetime
    seen: int
    items: list[Item] = field(default_factory=list)
    tail: dict[str, Any] = field(default_factory=dict)


def _items_of(store: Store, probe: str) -> tuple[Any, Any]:
    """The rows of the probe's reservoir: each instance (sidecar) keeps its own."""
    return DriftReservoirItem.probe == probe, DriftReservoirItem.instance == store.instance


def _locked_state(s: Any, probe: str, now: datetime, instance: str) -> DriftReservoirState:
    """The probe's reservoir state, created if missing and locked until this transaction ends.

    Every writer of the reservoir calls this first. The UPDATE is the transaction's first
    write: on PostgreSQL it holds the row's lock, on SQLite the database's write lock, so
    the count and the slots of two daemons sharing one store never interleave (an
    in-process lock alone let two daemons lose counts). The row is created with one
    ``INSERT ... ON CONFLICT DO NOTHING``, which replicas may race on safely."""
    insert_ignore(s, DriftReservoirState, {"probe": probe, "instance": instance,
                                           "window_start": now, "seen": 0, "tail": {}},
                  ["probe", "instance"])
    key = (DriftReservoirState.probe == probe, DriftReservoirState.instance == instance)
    s.execute(update(DriftReservoirState).where(*key).values(seen=DriftReservoirState.seen))
    state: DriftReservoirState = s.execute(
        select(DriftReservoirState).where(*key)
        .execution_options(populate_existing=True)).scalar_one()
    return state


def _draw(window: str, seen: int) -> int:
    """Algorithm R's draw for the ``seen``-th item of a window: uniform on [0, seen), and a
    function of the window and the item's position alone, not of how items were batched."""
    digest = hashlib.blake2b(f"{window}:{seen}".encode(), digest_size=16).digest()
    return int.from_bytes(digest, "big") % seen  # bias below seen / 2**128


def add_items(store: Store, probe: str, items: list[Item], capacity: int,
              tail: dict[str, Any] | None = None, seed: int = 0,
              read_from: dict[str, Any] | None = None) -> int:
    """Offer ``items`` to the probe's reservoir (and save the tail position with them).

    The sample is a deterministic function of the configured ``seed``, the probe, the
    window's start and the items in arrival order: replicas or reruns fed the same items
    in the same window keep the same sample.

    With ``read_from`` (the tail position the lines were read from), nothing is added and
    0 returned unless the stored position is still that one: another replica that read the
    same lines first has counted them.
    """
    now = datetime.now(UTC)
    with probe_lock(probe), store.session() as s:
        state = _locked_state(s, probe, now, store.instance)
        if read_from is not None and _position(state.tail) != _position(read_from):
            return 0
        window = f"{seed}:{probe}:{state.window_start.astimezone(UTC).isoformat()}"
        seen = int(state.seen)
        chosen: dict[int, Item] = {}
        for item in items:
            seen += 1
            slot = seen - 1 if seen <= capacity else _draw(window, seen)
            if slot < capacity:
                chosen[slot] = item  # a later item replacing a slot wins, as in algorithm R
        if chosen:
            s.execute(delete(DriftReservoirItem).where(
                *_items_of(store, probe), DriftReservoirItem.slot.in_(list(chosen))))
            s.add_all(
                DriftReservoirItem(
                    probe=probe, instance=store.instance, slot=slot, received_at=now,
                    item_id=item.item_id, text=item.text,
                    vector=None if item.vector is None
                    else np.ascontiguousarray(item.vector, dtype=np.float32).tobytes(),
                )
                for slot, item in chosen.items()
            )
        state.seen = seen
        if tail is not None:
            state.tail = dict(tail)
    return len(items)


def _position(tail: dict[str, Any]) -> tuple[Any, int]:
    return tail.get("inode"), int(tail.get("offset", 0))


def tail_state(store: Store, probe: str) -> dict[str, Any]:
    with store.session() as s:
        state = s.get(DriftReservoirState, (probe, store.instance))
        return dict(state.tail) if state is not None else {}


def peek_window(store: Store, probe: str, _repair: bool = True) -> Window:
    """The current window's sample, left in place (a window holding vectors of several
    dimensions is repaired first, see :func:`repair_dimensions`)."""
    now = datetime.now(UTC)
    with store.session() as s:
        state = s.get(DriftReservoirState, (probe, store.instance))
        rows = s.scalars(select(DriftReservoirItem).where(*_items_of(store, probe))
                         .order_by(DriftReservoirItem.slot)).all()
        start = state.window_start if state is not None else now
        seen = int(state.seen) if state is not None else 0
        tail = dict(state.tail) if state is not None else {}
    items = [
        Item(r.text, None if r.vector is None else np.frombuffer(r.vector, np.float32).copy(),
             r.item_id)
        for r in rows
    ]
    if _repair and len({it.vector.size for it in items if it.vector is not None}) > 1:
        repair_dimensions(store, probe)
        return peek_window(store, probe, _repair=False)
    return Window(start, now, seen, items, tail)


def window_dimensions(store: Store, probe: str) -> dict[int, int]:
    """Rows of the probe's current window per vector dimension (rows without a vector are
    not counted)."""
    size = func.length(DriftReservoirItem.vector)
    with store.session() as s:
        rows = s.execute(select(size, func.count()).where(
            *_items_of(store, probe), DriftReservoirItem.vector.is_not(None),
        ).group_by(size)).all()
    return {int(n) // 4: int(count) for n, count in rows}


def repair_dimensions(store: Store, probe: str) -> int | None:
    """Make the window's vectors one dimension again; returns the dimension kept.

    Versions before ingest checked dimensions stored whatever arrived, and one batch of
    another dimension failed every later run of the probe. The rows of the minority
    dimension(s) are dropped; with no majority (a tie) the window is reset. Logged.
    """
    with probe_lock(probe), store.session() as s:
        state = _locked_state(s, probe, datetime.now(UTC), store.instance)
        rows = s.execute(select(DriftReservoirItem.slot, func.length(DriftReservoirItem.vector))
                         .where(*_items_of(store, probe),
                                DriftReservoirItem.vector.is_not(None))).all()
        counts = Counter(int(n) // 4 for _, n in rows)
        if len(counts) < 2:
            return next(iter(counts), None)
        found = ", ".join(f"{n} of dimension {d}" for d, n in counts.most_common())
        (keep, most), (_, second) = counts.most_common(2)
        if most == second:
            s.execute(delete(DriftReservoirItem).where(*_items_of(store, probe)))
            state.window_start, state.seen = datetime.now(UTC), 0
            log.warning("drift probe %r: the current window held vectors of mixed dimensions "
                        "(%s) and none is the majority; started a new window", probe, found)
            return None
        drop = [slot for slot, n in rows if int(n) // 4 != keep]
        s.execute(delete(DriftReservoirItem).where(*_items_of(store, probe),
                                                   DriftReservoirItem.slot.in_(drop)))
    log.warning("drift probe %r: the current window held vectors of mixed dimensions (%s); "
                "dropped the %d row(s) not of dimension %d", probe, found, len(drop), keep)
    return keep


def reset_window(store: Store, probe: str, at: datetime,
                 started: datetime | None = None) -> bool:
    """Start a new window: empty the reservoir, keep the tail position. With ``started``
    (the start of the window a run took), only if that window is still the current one:
    a window is closed once, by the run that took it. Returns whether it was closed."""
    with probe_lock(probe), store.session() as s:
        state = _locked_state(s, probe, at, store.instance)
        if started is not None and state.window_start != started:
            return False
        s.execute(delete(DriftReservoirItem).where(*_items_of(store, probe)))
        state.window_start = at
        state.seen = 0
        return True


def rolling_reference(
    store: Store, probe: str, source: str, since: datetime, size: int, seed: int
) -> Reference | None:
    """The windows stored since ``since``, pooled and subsampled.

    Only windows of the newest one's embedding pipeline are pooled: after an intended model
    change, ``ragmon baseline capture`` stores a window of the new pipeline and the rolling
    reference restarts from it. A sidecar with no window of its own in the period pools
    the windows of the instance that stored the newest one (see
    :func:`~ragmon.probes.references.fleet_reference`).
    """
    recent = (ReferenceSample.probe == probe, ReferenceSample.source == source,
              ReferenceSample.created_at >= since)
    with store.session() as s:
        instance: str | None = store.instance
        rows = s.scalars(select(ReferenceSample).where(
            *recent, ReferenceSample.instance == instance).order_by(ReferenceSample.id)).all()
        if not rows and store.instance:
            instance = s.scalar(select(ReferenceSample.instance).where(
                *recent, ReferenceSample.instance != store.instance)
                .order_by(ReferenceSample.id.desc()).limit(1))
            rows = [] if instance is None else s.scalars(select(ReferenceSample).where(
                *recent, ReferenceSample.instance == instance)
                .order_by(ReferenceSample.id)).all()
    if not rows:
        return None
    fingerprints = {r.embedder_fingerprint for r in rows}
    newest = rows[-1]
    rows = [r for r in rows if r.embedder_fingerprint == newest.embedder_fingerprint]
    vectors = np.concatenate([
        np.frombuffer(r.vectors, np.float32).reshape(r.n, r.dimension) for r in rows
        if r.dimension == newest.dimension
    ])
    ids: list[Any] = [i for r in rows if r.dimension == newest.dimension for i in r.item_ids]
    texts: list[Any] = [
        t for r in rows if r.dimension == newest.dimension
        for t in r.details.get("texts", [None] * r.n)
    ]
    total = vectors.shape[0]
    holdout = vectors[:0]
    if total > size:  # the rest of the period is the holdout the reference's null comes from
        order = np.random.default_rng(seed).permutation(total)
        keep, rest = np.sort(order[:size]), np.sort(order[size:])
        vectors, holdout = vectors[keep], vectors[rest]
        ids = [ids[i] for i in keep] if len(ids) == total else []
        texts = [texts[i] for i in keep] if len(texts) == total else []
    return Reference(
        id=newest.id, probe=probe, source=source, created_at=rows[0].created_at,
        embedder_fingerprint=newest.embedder_fingerprint, vectors=vectors, item_ids=ids,
        pinned=False,
        details={"texts": texts, "windows": len(rows),
                 "other_fingerprints": sorted(fingerprints - {newest.embedder_fingerprint})},
        holdout=holdout, instance=newest.instance,
    )


def pinned_reference(store: Store, probe: str, source: str) -> Reference | None:
    """The newest pinned reference of the probe, if any (a sidecar with no reference of
    its own: the fleet's, see :func:`~ragmon.probes.references.fleet_reference`)."""
    ref = latest_reference(store, probe, source)
    if ref is None and store.instance:
        ref = fleet_reference(store, probe, source)
    return ref if ref is not None and ref.pinned else None


def previous_alarm_state(store: Store, probe: str, method: str) -> dict[str, Any]:
    """The persistence rule's memory after the probe's last window for ``method`` (one
    lookup in the (probe, instance, method, id) index; retention keeps this row whatever its
    age)."""
    with store.session() as s:
        row = s.scalars(select(DriftStatistic).where(
            index_prefix([DriftStatistic.probe, DriftStatistic.instance, DriftStatistic.method],
                         [probe, store.instance, method], DriftStatistic.id),
        ).order_by(  # as the index is: one entry of it, not a walk (see index_prefix)
            DriftStatistic.probe.desc(), DriftStatistic.instance.desc(),
            DriftStatistic.method.desc(), DriftStatistic.id.desc(),
        ).limit(1)).first()
    return dict(row.details.get("alarm_state", {})) if row is not None else {}


def save_statistics(store: Store, rows: list[DriftStatistic],
                    shifts: dict[int, list[DriftClusterShift]]) -> list[int]:
    """Store one window's statistics (and the cluster shifts of row ``i`` in ``shifts[i]``)."""
    ids = []
    with store.session() as s:
        for i, row in enumerate(rows):
            row.instance = store.instance
            s.add(row)
            s.flush()
            ids.append(row.id)
            for shift in shifts.get(i, []):
                shift.statistic_id = row.id
                s.add(shift)
    return ids


def statistics(store: Store, probe: str, limit: int = 50) -> list[DriftStatistic]:
    with store.session() as s:
        return list(s.scalars(select(DriftStatistic).where(
            DriftStatistic.probe == probe, DriftStatistic.instance == store.instance,
        ).order_by(DriftStatistic.id.desc()).limit(limit)).all())


def cluster_shifts(store: Store, statistic_id: int) -> list[DriftClusterShift]:
    with store.session() as s:
        return list(s.scalars(select(DriftClusterShift).where(
            DriftClusterShift.statistic_id == statistic_id,
        ).order_by(DriftClusterShift.direction, DriftClusterShift.rank)).all())


class DriftRetention(RetentionPart):
    """Drift's share of retention: statistics (with their cluster shifts) whose window ended
    before the cutoff are deleted, except the newest of each probe and method, which holds
    its alarm state; reference windows that a rolling reference still pools (its
    ``reference.period`` reaches further back than ``store.retention``) are kept. Old
    reference windows themselves go with the references' part, which keeps pinned ones."""

    name = "drift"

    def __init__(self, periods: Mapping[str, float] | None = None):
        #: Rolling drift probe -> its ``reference.period`` (seconds).
        self.periods = dict(periods or {})

    @classmethod
    def for_probes(cls, probes: Mapping[str, Any]) -> DriftRetention:
        """From the configured probes (the drift probes with a rolling reference)."""
        return cls({name: float(cfg.reference.period) for name, cfg in probes.items()
                    if cfg.kind == "drift" and cfg.reference.mode == "rolling"})

    def keep(self, model: type[Any], job: RetentionJob) -> list[Keep]:
        if model is not ReferenceSample:
            return []
        pooled = [and_(ReferenceSample.probe == probe,
                       ReferenceSample.created_at >= job.now - timedelta(seconds=period))
                  for probe, period in sorted(self.periods.items())
                  if job.now - timedelta(seconds=period) < job.cutoff]
        return [("reference window(s) within a rolling drift reference's period",
                 or_(*pooled))] if pooled else []

    def prune(self, job: RetentionJob) -> None:
        with job.store.session() as s:
            newest = list(s.scalars(select(func.max(DriftStatistic.id)).group_by(
                DriftStatistic.probe, DriftStatistic.instance, DriftStatistic.method)).all())
        keep = [("newest drift statistic(s) of a probe and method (the alarm state)",
                 DriftStatistic.id.in_(newest))] if newest else []
        job.delete_older(DriftStatistic, DriftStatistic.window_end, keep=keep,
                         children=(DriftClusterShift.statistic_id,))
