"""The SQL store: the generic part. Probe runs with their values and per-query rows, schema
migration, retention (``retention.py``) and the store's size; features keep their own
tables and queries beside them.

SQLite (a file, WAL mode) by default; PostgreSQL when several daemons share history.
Errors from SQLAlchemy are translated to StoreError naming the store (password hidden).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    and_,
    create_engine,
    event,
    func,
    insert,
    inspect,
    literal,
    select,
    text,
    tuple_,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ragmon.monitor.common import json_text, jsonable, redact, utc
from ragmon.monitor.errors import ClaimLost, SchemaError, StoreError, StoreUnavailable
from ragmon.monitor.store import migrate, retention
from ragmon.monitor.store.models import ProbeRun, QueryResult, RunValue
from ragmon.monitor.store.retention import RetentionPart, RetentionReport

#: Probe runs deleted per retention batch (each with its values and query rows; a recall
#: run of a 52-question golden set is about 120 KB in all).
RETENTION_BATCH = 1000
#: How old the cached row counts and size may get before a scrape measures them again.
SIZE_MAX_AGE = 600.0


def canonical_labels(labels: Mapping[str, Any]) -> str:
    """``{"mode": "live", "k": 10}`` -> ``"k=10,mode=live"`` (sorted, stable)."""
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def parse_labels(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split(",") if part)


def index_prefix(columns: Sequence[Any], values: Sequence[Any], last: Any,
                 low: int = -(2**63), high: int = 2**63 - 1) -> ColumnElement[bool]:
    """``columns == values`` (and ``low <= last <= high``) for a lookup in the index on
    ``(*columns, last)`` ordered as the index is (``ORDER BY *columns, last``), written as
    one row-value range: ``(*values, low) <= (*columns, last) <= (*values, high)``.

    With ``=``, PostgreSQL's planner takes the columns for constants and the order for plain
    ``ORDER BY id``, and may walk the primary key filtering rows: cheap while the rows it
    wants are near the end, a walk through the history when they are not (a probe failing
    for a week, a golden set version that began after months of another). As a range, only
    the index gives the order, and both SQLite and PostgreSQL seek straight into it."""
    key = tuple_(*columns, last)
    return and_(key >= tuple_(*(literal(v) for v in (*values, low))),
                key <= tuple_(*(literal(v) for v in (*values, high))))


@dataclass
class RunRecord:
    """A finished run as the runner hands it to the store."""

    probe: str
    kind: str
    target: str | None
    started_at: datetime
    finished_at: datetime
    status: str
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    values: list[tuple[str, dict[str, Any], float]] = field(default_factory=list)
    queries: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    golden_version: str | None = None
    embedder_fingerprint: str | None = None
    target_fingerprint: str | None = None
    #: The replica that ran it, and the schedule slot it ran (None outside the schedule).
    replica: str | None = None
    slot: datetime | None = None


#: Within a transaction that stores a run: marks the run's slot claim finished (given the
#: new run's id); False when the claim no longer holds, and the run is not stored.
FinishClaim = Callable[[Session, int], bool]


@dataclass(frozen=True)
class StoreSize:
    """Rows per table and the store's size on disk, as last measured."""

    rows: dict[str, int]
    #: SQLite: the database file plus its WAL; PostgreSQL: ``pg_database_size``.
    bytes: int | None
    #: When it was measured (``time.time()``).
    measured_at: float


class Store:
    """Access to the ragmon database. Thread-safe; one per process."""

    def __init__(self, url: str, instance: str = "", *, pool_size: int = 4,
                 max_overflow: int = 4, pool_timeout: float = 30.0,
                 statement_timeout: float | None = None):
        """``pool_size`` + ``max_overflow`` connections at most (PostgreSQL), waiting up to
        ``pool_timeout`` seconds for a free one; ``statement_timeout`` (seconds, PostgreSQL)
        ends any statement that runs longer. Connections are checked before use, so a
        database restart costs the requests in flight, not the process."""
        #: Whose runs and per-probe state this handle reads and writes: the sidecar's
        #: ``deployment.instance``, "" for standalone replicas (which share one history).
        self.instance = instance
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise StoreError(
                "store.url is not a database URL; use sqlite:///PATH or "
                "postgresql+psycopg://USER@HOST/DB"
            ) from None
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        self.safe_url = parsed.render_as_string(hide_password=True)
        self.dialect = parsed.get_backend_name()
        # JSON columns take numpy values as the rest of ragmon does (one encoding per row)
        kwargs: dict[str, Any] = {"pool_pre_ping": True, "json_serializer": json_text}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        elif self.dialect == "postgresql":
            kwargs["connect_args"] = {"connect_timeout": 10}
            kwargs.update(pool_size=pool_size, max_overflow=max_overflow,
                          pool_timeout=pool_timeout)
            if statement_timeout:
                kwargs["connect_args"]["options"] = (
                    f"-c statement_timeout={int(statement_timeout * 1000)}")
        try:
            self.engine: Engine = create_engine(parsed, **kwargs)
        except (ImportError, SQLAlchemyError) as exc:
            raise StoreError(f"store {self.safe_url}: cannot create engine: {exc}") from None
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        #: The features' shares of retention (the composition root adds them).
        self.retention_parts: list[RetentionPart] = []
        #: The report of this process's last completed retention pass.
        self.last_retention: RetentionReport | None = None
        self._size: StoreSize | None = None
        self._size_lock = threading.Lock()

    # --- lifecycle -----------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction; database errors come out as StoreError naming the store."""
        try:
            with self._sessions.begin() as session:
                yield session
        except SQLAlchemyError as exc:
            raise self._translate(exc) from None

    def _translate(self, exc: SQLAlchemyError) -> StoreError:
        """One line that names the store (password hidden), the database's own reason and
        what to do; the kind of failure decides the advice."""
        orig = getattr(exc, "orig", None)
        reason = (str(orig) if orig is not None else str(exc)).strip().splitlines()[0]
        reason = redact(reason, [self.engine.url.password])
        lowered = reason.lower()
        where = f"store {self.safe_url}"
        if "file is not a database" in lowered or "file is encrypted" in lowered:
            return StoreError(f"{where} is not a SQLite database ({reason}); point store.url "
                              "at a ragmon database or at a new file")
        if any(s in lowered for s in ("disk is full", "no space left", "could not extend")):
            return StoreError(f"{where}: the disk is full ({reason}); free space on its volume "
                              "or lower store.retention")
        if "readonly" in lowered or "read-only" in lowered:
            return StoreError(f"{where} is read-only ({reason}); make the file and its "
                              "folder writable, or use a writable database")
        if "statement timeout" in lowered:
            return StoreError(f"{where}: a statement ran past store.statement_timeout "
                              f"({reason}); look for locks held by another client, or raise "
                              "store.statement_timeout")
        if isinstance(exc, OperationalError):
            return StoreUnavailable(f"{where} is unreachable: {reason}; check store.url and "
                                    "that the database is running")
        return StoreError(f"{where}: {type(orig or exc).__name__}: {reason}")

    def ping(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except SQLAlchemyError as exc:
            raise self._translate(exc) from None

    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema (on PostgreSQL under an advisory lock, so replicas can race)."""
        self.ping()
        try:
            migrate.upgrade(self.engine, self.safe_url, revision)
        except SQLAlchemyError as exc:
            raise self._translate(exc) from None

    def revision(self) -> str | None:
        try:
            return migrate.current_revision(self.engine)
        except SQLAlchemyError as exc:
            raise self._translate(exc) from None

    def require_head(self) -> None:
        """Raise SchemaError unless the schema is exactly at this ragmon's head."""
        try:
            current = migrate.check_known(self.engine, self.safe_url)
        except SQLAlchemyError as exc:
            raise self._translate(exc) from None
        head = migrate.head_revision()
        if current != head:
            raise SchemaError(
                f"store {self.safe_url} is at schema revision {current!r}, not {head!r}; "
                "run `ragmon migrate`"
            )

    def at_head(self) -> bool:
        try:
            return self.revision() == migrate.head_revision()
        except StoreError:
            return False

    def close(self) -> None:
        self.engine.dispose()

    # --- probe runs ----------------------------------------------------------------------
    def record_run(self, record: RunRecord, finish: FinishClaim | None = None) -> int:
        """Write a run with its values and per-query rows in one transaction; with
        ``finish``, its slot claim is marked run in that transaction, and a claim that no
        longer holds stores nothing (raises ClaimLost)."""
        with self.session() as s:
            run = ProbeRun(
                probe=record.probe,
                instance=self.instance,
                kind=record.kind,
                target=record.target,
                started_at=record.started_at,
                finished_at=record.finished_at,
                status=record.status,
                error=record.error,
                details=jsonable(record.details),
                golden_version=record.golden_version,
                embedder_fingerprint=record.embedder_fingerprint,
                target_fingerprint=record.target_fingerprint,
                replica=record.replica,
                slot=record.slot,
            )
            s.add(run)
            s.flush()
            if finish is not None and not finish(s, run.id):
                raise ClaimLost(f"probe {record.probe!r}: the claim on slot "
                                f"{record.slot.isoformat() if record.slot else '-'} ran out "
                                "before the run was stored; another replica holds it")
            # Bulk INSERTs (many rows per statement), not one ORM object per row: a
            # 1,000-query run stores its rows in a fraction of the time.
            values = [{"run_id": run.id, "name": name, "labels": canonical_labels(labels),
                       "value": float(v)} for name, labels, v in record.values]
            if values:
                s.execute(insert(RunValue), values)
            queries = [{"run_id": run.id, "query_id": qid, "status": status, "data": data}
                       for qid, status, data in record.queries]
            if queries:
                s.execute(insert(QueryResult), queries)
            return run.id

    def latest_runs(
        self, probes: Iterable[str] | None = None
    ) -> list[tuple[ProbeRun, list[RunValue]]]:
        """The newest run of each of ``probes`` (default: of every probe in the history) of
        this instance, with its values. With ``probes``, each is one lookup in the (probe,
        instance, id) index, so a scrape costs the same at any history size; without, the
        whole history is grouped."""
        with self.session() as s:
            if probes is None:
                newest = (
                    select(ProbeRun.probe, func.max(ProbeRun.id).label("id"))
                    .where(ProbeRun.instance == self.instance)
                    .group_by(ProbeRun.probe)
                    .subquery()
                )
                runs = s.scalars(select(ProbeRun).join(newest, ProbeRun.id == newest.c.id)).all()
            else:
                # One entry of the (probe, instance, id) index each (see index_prefix).
                key = [ProbeRun.probe, ProbeRun.instance]
                ids = [select(ProbeRun.id).where(index_prefix(key, [p, self.instance],
                                                              ProbeRun.id))
                       .order_by(ProbeRun.probe.desc(), ProbeRun.instance.desc(),
                                 ProbeRun.id.desc()).limit(1)
                       .scalar_subquery() for p in sorted(set(probes))]
                runs = s.scalars(select(ProbeRun).where(ProbeRun.id.in_(ids))).all() if ids else []
            values = s.scalars(
                select(RunValue).where(RunValue.run_id.in_([r.id for r in runs]))
            ).all()
        by_run: dict[int, list[RunValue]] = {}
        for v in values:
            by_run.setdefault(v.run_id, []).append(v)
        return [(r, by_run.get(r.id, [])) for r in runs]

    def last_success(self, probes: Iterable[str] | None = None) -> dict[str, datetime]:
        """Finish time of the newest successful run of this instance, per probe (of
        ``probes``: one lookup each in the (probe, instance, status, id) index; else of every
        probe, grouping the history)."""
        with self.session() as s:
            if probes is None:
                rows = s.execute(
                    select(ProbeRun.probe, func.max(ProbeRun.finished_at))
                    .where(ProbeRun.status == "ok", ProbeRun.instance == self.instance)
                    .group_by(ProbeRun.probe)
                ).all()
            else:
                ids = [select(ProbeRun.id).where(index_prefix(
                           [ProbeRun.probe, ProbeRun.instance, ProbeRun.status],
                           [p, self.instance, "ok"], ProbeRun.id))
                       .order_by(ProbeRun.probe.desc(), ProbeRun.instance.desc(),
                                 ProbeRun.status.desc(), ProbeRun.id.desc())
                       .limit(1).scalar_subquery()
                       for p in sorted(set(probes))]
                rows = s.execute(select(ProbeRun.probe, ProbeRun.finished_at)
                                 .where(ProbeRun.id.in_(ids))).all() if ids else []
        return {probe: utc(ts) for probe, ts in rows if ts is not None}

    def runs(self, probe: str, limit: int = 20, status: str | None = None) -> list[ProbeRun]:
        with self.session() as s:
            q = select(ProbeRun).where(ProbeRun.probe == probe,
                                       ProbeRun.instance == self.instance)
            if status:
                q = q.where(ProbeRun.status == status)
            return list(s.scalars(q.order_by(ProbeRun.id.desc()).limit(limit)).all())

    def run(self, run_id: int) -> ProbeRun | None:
        with self.session() as s:
            return s.get(ProbeRun, run_id)

    def run_values(self, run_id: int) -> list[RunValue]:
        with self.session() as s:
            return list(s.scalars(select(RunValue).where(RunValue.run_id == run_id)).all())

    def query_results(self, run_id: int) -> list[QueryResult]:
        with self.session() as s:
            return list(
                s.scalars(select(QueryResult).where(QueryResult.run_id == run_id)).all()
            )

    # --- retention -----------------------------------------------------------------------
    def add_retention(self, *parts: RetentionPart) -> None:
        """Add features' shares of retention (what they keep, what of theirs is deleted)."""
        self.retention_parts.extend(parts)

    def prune(self, retention_seconds: float, now: datetime | None = None, *,
              parts: Iterable[RetentionPart] | None = None,
              batch_size: int = RETENTION_BATCH) -> RetentionReport:
        """Delete history older than the retention, in batches of at most ``batch_size``
        rows per table: probe runs (values and query rows go with them) except those a part
        keeps (a pinned recall baseline), then each part's own history (default parts: the
        ones added with :meth:`add_retention`). Refreshes the cached size afterwards."""
        now = now or datetime.now(UTC)
        job = retention.RetentionJob(
            self, now, now - timedelta(seconds=retention_seconds),
            self.retention_parts if parts is None else list(parts), batch_size)
        retention.run(job, (ProbeRun, ProbeRun.finished_at,
                            (RunValue.run_id, QueryResult.run_id)))
        if self.dialect == "postgresql" and job.report.removed:
            self._analyze([t for t, n in job.report.removed.items() if n])
        self.last_retention = job.report
        try:
            self.measure_size()
        except StoreError:
            pass  # measured again at a later scrape
        return job.report

    def _analyze(self, tables: list[str]) -> None:
        """PostgreSQL: refresh the planner's row counts after a large delete (they are also
        what ``ragmon_store_rows`` reports)."""
        quote = self.engine.dialect.identifier_preparer.quote
        try:
            with self.engine.connect() as conn:
                for table in tables:
                    conn.exec_driver_sql(f"ANALYZE {quote(table)}")
                conn.commit()
        except SQLAlchemyError:
            pass  # only statistics; autovacuum refreshes them too

    # --- size ----------------------------------------------------------------------------
    def size(self, max_age: float = SIZE_MAX_AGE) -> StoreSize:
        """Rows per table and bytes on disk, cached: measured again when older than
        ``max_age`` seconds (by one caller at a time; the others get the cached value) and
        after every retention pass, so a scrape does not count a large history."""
        cached = self._size
        if cached is not None and time.time() - cached.measured_at < max_age:
            return cached
        if not self._size_lock.acquire(blocking=cached is None):
            assert cached is not None
            return cached
        try:
            cached = self._size
            if cached is not None and time.time() - cached.measured_at < max_age:
                return cached
            return self._measure_size()
        finally:
            self._size_lock.release()

    def measure_size(self) -> StoreSize:
        """Measure rows per table and bytes now (and cache them)."""
        with self._size_lock:
            return self._measure_size()

    def _measure_size(self) -> StoreSize:
        """SQLite: ``count(*)`` per table (it walks the table's smallest index) and the file
        sizes. PostgreSQL: the planner's row estimate (``pg_class.reltuples``, kept current
        by autovacuum and by retention's ANALYZE; ``count(*)`` for a table never analyzed)
        and ``pg_database_size``."""
        quote = self.engine.dialect.identifier_preparer.quote
        size: int | None = None
        try:
            with self.engine.connect() as conn:
                tables = [t for t in inspect(conn).get_table_names() if t != "alembic_version"]
                estimates: dict[str, int] = {}
                if self.dialect == "postgresql":
                    estimates = {str(name): int(n) for name, n in conn.execute(text(
                        "SELECT c.relname, c.reltuples FROM pg_class c JOIN pg_namespace ns "
                        "ON ns.oid = c.relnamespace WHERE c.relkind = 'r' "
                        "AND ns.nspname = current_schema() AND c.reltuples >= 0"))}
                    size = int(conn.execute(
                        text("SELECT pg_database_size(current_database())")).scalar_one())
                rows = {
                    t: estimates[t] if t in estimates
                    else int(conn.execute(text(f"SELECT count(*) FROM {quote(t)}")).scalar_one())
                    for t in tables
                }
        except SQLAlchemyError as exc:
            raise self._translate(exc) from None
        if self.dialect == "sqlite":
            size = _sqlite_bytes(self.engine.url.database)
        self._size = StoreSize(rows, size, time.time())
        return self._size


def insert_ignore(s: Session, model: type[Any], values: dict[str, Any], keys: list[str]) -> int:
    """INSERT one row unless a row with the same unique ``keys`` exists; returns 1 if this
    call inserted it, 0 if another writer (another replica) was first.

    One statement (``ON CONFLICT DO NOTHING``) on SQLite and PostgreSQL alike: never a check
    followed by an insert, which two replicas starting together both pass."""
    insert_for: Any
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as insert_for
    else:
        from sqlalchemy.dialects.sqlite import insert as insert_for
    statement = insert_for(model).values(**values).on_conflict_do_nothing(index_elements=keys)
    primary_key = list(model.__table__.primary_key.columns)
    # RETURNING, not rowcount: drivers disagree on rowcount for ON CONFLICT DO NOTHING.
    return len(s.execute(statement.returning(*primary_key)).all())


def _sqlite_bytes(database: str | None) -> int | None:
    """The SQLite file's size plus its write-ahead log's (None for an in-memory store)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return sum(os.path.getsize(p) for p in (database, database + "-wal") if os.path.exists(p))


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


__all__ = [
    "FinishClaim", "RetentionPart", "RetentionReport", "RunRecord", "Store", "StoreSize",
    "canonical_labels",
    "index_prefix", "insert_ignore", "parse_labels",
]
