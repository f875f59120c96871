"""The SQL store: the generic part. Probe runs with their values and per-query rows, schema
migration and retention; features keep their own tables and queries beside them.

SQLite (a file, WAL mode) by default; PostgreSQL when several daemons share history.
Errors from SQLAlchemy are translated to StoreError naming the store (password hidden).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, create_engine, delete, event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ragmon.monitor.common import jsonable, redact, utc
from ragmon.monitor.errors import SchemaError, StoreError, StoreUnavailable
from ragmon.monitor.store import migrate
from ragmon.monitor.store.models import ProbeRun, QueryResult, RunValue


def canonical_labels(labels: Mapping[str, Any]) -> str:
    """``{"mode": "live", "k": 10}`` -> ``"k=10,mode=live"`` (sorted, stable)."""
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def parse_labels(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split(",") if part)


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


class Store:
    """Access to the ragmon database. Thread-safe; one per process."""

    def __init__(self, url: str):
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
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        elif self.dialect == "postgresql":
            kwargs["connect_args"] = {"connect_timeout": 10}
        try:
            self.engine: Engine = create_engine(parsed, **kwargs)
        except (ImportError, SQLAlchemyError) as exc:
            raise StoreError(f"store {self.safe_url}: cannot create engine: {exc}") from None
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

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
    def record_run(self, record: RunRecord) -> int:
        """Write a run with its values and per-query rows in one transaction."""
        with self.session() as s:
            run = ProbeRun(
                probe=record.probe,
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
            )
            s.add(run)
            s.flush()
            s.add_all(
                RunValue(run_id=run.id, name=name, labels=canonical_labels(labels), value=float(v))
                for name, labels, v in record.values
            )
            s.add_all(
                QueryResult(run_id=run.id, query_id=qid, status=status, data=jsonable(data))
                for qid, status, data in record.queries
            )
            return run.id

    def latest_runs(self) -> list[tuple[ProbeRun, list[RunValue]]]:
        """The newest run of every probe, with its values."""
        with self.session() as s:
            newest = (
                select(ProbeRun.probe, func.max(ProbeRun.id).label("id"))
                .group_by(ProbeRun.probe)
                .subquery()
            )
            runs = s.scalars(select(ProbeRun).join(newest, ProbeRun.id == newest.c.id)).all()
            values = s.scalars(
                select(RunValue).where(RunValue.run_id.in_([r.id for r in runs]))
            ).all()
        by_run: dict[int, list[RunValue]] = {}
        for v in values:
            by_run.setdefault(v.run_id, []).append(v)
        return [(r, by_run.get(r.id, [])) for r in runs]

    def last_success(self) -> dict[str, datetime]:
        """Finish time of the newest successful run, per probe."""
        with self.session() as s:
            rows = s.execute(
                select(ProbeRun.probe, func.max(ProbeRun.finished_at))
                .where(ProbeRun.status == "ok")
                .group_by(ProbeRun.probe)
            ).all()
        return {probe: utc(ts) for probe, ts in rows if ts is not None}

    def runs(self, probe: str, limit: int = 20, status: str | None = None) -> list[ProbeRun]:
        with self.session() as s:
            q = select(ProbeRun).where(ProbeRun.probe == probe)
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
    def prune(self, retention_seconds: float, now: datetime | None = None) -> int:
        """Delete runs older than the retention (values and queries go with them)."""
        cutoff = (now or datetime.now(UTC)) - timedelta(seconds=retention_seconds)
        with self.session() as s:
            old = select(ProbeRun.id).where(ProbeRun.finished_at < cutoff)
            ids = list(s.scalars(old).all())
            if not ids:
                return 0
            s.execute(delete(RunValue).where(RunValue.run_id.in_(ids)))
            s.execute(delete(QueryResult).where(QueryResult.run_id.in_(ids)))
            s.execute(delete(ProbeRun).where(ProbeRun.id.in_(ids)))
            return len(ids)


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


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


__all__ = ["RunRecord", "Store", "insert_ignore", "canonical_labels", "parse_labels"]
