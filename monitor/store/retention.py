"""Retention: history older than ``store.retention`` is deleted in bounded, time-ordered
batches, and what is kept whatever its age is said.

The foundation deletes probe runs (with their values and query rows). Each feature adds a
:class:`RetentionPart` (listed by the composition root, registered with
``Store.add_retention``): conditions on any table's rows that must be kept whatever their
age (``keep``: the run of a pinned recall baseline, a pinned reference), and the deletion
of its own history (``prune``: drift statistics, reference windows). A part that cannot say
what it keeps fails the pass before anything is deleted.

A batch deletes at most ``batch_size`` rows of a table (with their child rows) in its own
transaction, bounded by the (time, id) of the batch's last row, so no statement binds more
than a few parameters: a backlog of any size is deleted on SQLite (at most 32,766 variables
per statement in stock builds) and PostgreSQL (65,535) alike, and a writer waits for at most
one batch.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, CursorResult, and_, delete, func, not_, or_, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import InstrumentedAttribute

from ragmon.monitor.common import iso

if TYPE_CHECKING:
    from ragmon.monitor.store import Store

log = logging.getLogger("ragmon.retention")

#: What a part keeps: (what it is, in the log's words; the condition on the table's rows).
Keep = tuple[str, ColumnElement[bool]]


@dataclass
class RetentionReport:
    """What one retention pass deleted and what it kept although older than the cutoff."""

    cutoff: datetime
    batch_size: int
    #: Rows deleted, per table.
    removed: Counter[str] = field(default_factory=Counter)
    #: Rows older than the cutoff that were kept, per reason ("run of a pinned recall
    #: baseline"); each row is counted under the first reason that keeps it.
    kept: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    largest_batch: int = 0
    #: Parts whose own deletion failed (``"drift: store ... is unreachable"``).
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    finished_at: float | None = None

    @property
    def runs(self) -> int:
        """Probe runs deleted."""
        return self.removed["probe_runs"]

    def summary(self) -> str:
        """One line for the log: what was removed, in how many batches, and what was kept."""
        removed = ", ".join(f"{n} {t}" for t, n in sorted(self.removed.items()) if n)
        text = (f"removed {removed or 'nothing'} older than {iso(self.cutoff)} in "
                f"{self.batches} batch(es) of at most {self.batch_size} rows "
                f"({self.seconds:.1f}s)")
        kept = ", ".join(f"{n} {what}" for what, n in self.kept.items() if n)
        if kept:
            text += f"; kept although older: {kept}"
        if self.errors:
            text += "; failed: " + "; ".join(self.errors)
        return text


class RetentionPart:
    """A feature's share of retention. Both methods are optional."""

    name = "part"

    def keep(self, model: type[Any], job: RetentionJob) -> Sequence[Keep]:
        """Conditions on the rows of ``model`` that are kept whatever their age, each with
        what it keeps; asked for every table retention deletes from (``ProbeRun`` too)."""
        return ()

    def prune(self, job: RetentionJob) -> None:
        """Delete the feature's own history older than ``job.cutoff`` with
        ``job.delete_older``."""


class RetentionJob:
    """One retention pass: the cutoff, the parts, the batch size and the report."""

    def __init__(self, store: Store, now: datetime, cutoff: datetime,
                 parts: Sequence[RetentionPart], batch_size: int):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.store = store
        self.now = now
        self.cutoff = cutoff
        self.parts = list(parts)
        self.batch_size = batch_size
        self.report = RetentionReport(cutoff, batch_size)

    def keep(self, model: type[Any]) -> list[Keep]:
        """What every part keeps of ``model``'s rows."""
        return [k for part in self.parts for k in part.keep(model, self)]

    def delete_older(
        self, model: type[Any], time_col: InstrumentedAttribute[Any], *,
        keep: Sequence[Keep] = (), children: Sequence[InstrumentedAttribute[Any]] = (),
    ) -> int:
        """Delete ``model``'s rows with ``time_col`` before the cutoff, except those ``keep``
        matches, oldest first, in batches of at most ``batch_size`` rows; ``children`` are
        the foreign keys of child rows deleted with them. Needs an index on
        ``(time_col, id)``. Returns the rows deleted; the report counts them and what
        ``keep`` kept."""
        (pk,) = sa_inspect(model).primary_key
        old: ColumnElement[bool] = time_col < self.cutoff
        if keep:
            old = and_(old, not_(or_(*(condition for _, condition in keep))))
        table = model.__tablename__
        total = 0
        while True:
            with self.store.session() as s:
                edge = s.execute(select(time_col, pk).where(old).order_by(time_col, pk)
                                 .offset(self.batch_size - 1).limit(1)).first()
                batch = old if edge is None else and_(old, or_(
                    time_col < edge[0], and_(time_col == edge[0], pk <= edge[1])))
                for fk in children:
                    gone = _rowcount(s.execute(
                        delete(fk.class_).where(fk.in_(select(pk).where(batch)))
                        .execution_options(synchronize_session=False)))
                    self.report.removed[fk.class_.__tablename__] += gone
                n = _rowcount(s.execute(delete(model).where(batch)
                                        .execution_options(synchronize_session=False)))
            total += n
            self.report.removed[table] += n
            self.report.batches += 1
            self.report.largest_batch = max(self.report.largest_batch, n)
            if edge is None or n == 0:  # the last batch, or another replica got there first
                break
        self._count_kept(model, time_col, keep)
        return total

    def _count_kept(self, model: type[Any], time_col: InstrumentedAttribute[Any],
                    keep: Sequence[Keep]) -> None:
        earlier: list[ColumnElement[bool]] = []
        with self.store.session() as s:
            for what, condition in keep:
                only = and_(condition, not_(or_(*earlier))) if earlier else condition
                n = s.scalar(select(func.count()).select_from(model)
                             .where(time_col < self.cutoff, only))
                self.report.kept[what] += int(n or 0)
                earlier.append(condition)


def _rowcount(result: Any) -> int:
    assert isinstance(result, CursorResult)  # a DELETE has a rowcount
    return int(result.rowcount or 0)


def run(job: RetentionJob, runs: tuple[type[Any], InstrumentedAttribute[Any],
                                       Sequence[InstrumentedAttribute[Any]]]) -> None:
    """The pass: the foundation's runs first (a part that cannot say what it keeps stops
    the pass here, before anything is deleted), then each part's own history."""
    started = time.monotonic()
    model, time_col, children = runs
    job.delete_older(model, time_col, keep=job.keep(model), children=children)
    for part in job.parts:
        try:
            part.prune(job)
        except Exception as exc:  # noqa: BLE001 - one feature's failure must not stop the rest
            log.warning("retention of %s failed: %s", part.name, exc)
            job.report.errors.append(f"{part.name}: {exc}")
    job.report.seconds = time.monotonic() - started
    job.report.finished_at = time.time()


__all__ = ["Keep", "RetentionJob", "RetentionPart", "RetentionReport"]
