"""The store and its migrations, on SQLite and on a real PostgreSQL (one parametrized fixture)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from ragmon.monitor.app import metadata
from ragmon.monitor.errors import SchemaError, StoreError, StoreUnavailable
from ragmon.monitor.store import RunRecord, Store, migrate
from ragmon.probes.references import latest_reference, save_reference

REPO = Path(__file__).resolve().parents[2]


def record(probe: str = "p", status: str = "ok", minutes_ago: float = 0, **kw) -> RunRecord:  # type: ignore[no-untyped-def]
    end = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return RunRecord(probe=probe, kind="canary", target=None, started_at=end - timedelta(seconds=2),
                     finished_at=end, status=status, **kw)


def test_single_head() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert len(script.get_heads()) == 1


def test_upgrade_downgrade_upgrade_round_trips(store_url: str) -> None:
    store = Store(store_url)
    store.migrate()
    head = migrate.head_revision()
    assert store.revision() == head
    migrate.downgrade(store.engine, "base")
    assert store.revision() is None
    with store.engine.connect() as conn:
        tables = set(conn.dialect.get_table_names(conn)) - {"alembic_version"}
    assert tables == set()
    store.migrate()
    assert store.revision() == head
    store.record_run(record())
    store.close()


def test_models_match_migrated_ddl(store: Store) -> None:
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, metadata())
    assert diff == []


def test_run_is_stored_with_values_and_queries(store: Store) -> None:
    run_id = store.record_run(record(
        values=[("recall_ratio", {"k": 10, "mode": "live"}, 0.75), ("index_vectors", {}, 42)],
        queries=[("q1", "ok", {"rank": 3, "ids": ["a", "b"]})],
        details={"verdict": "healthy", "np": np.float32(0.5)},
    ))
    (run, values), = store.latest_runs()
    assert run.id == run_id and run.details == {"verdict": "healthy", "np": 0.5}
    assert {(v.name, v.labels, v.value) for v in values} == {
        ("recall_ratio", "k=10,mode=live", 0.75), ("index_vectors", "", 42.0)}
    (q,) = store.query_results(run_id)
    assert q.data == {"rank": 3, "ids": ["a", "b"]}
    assert run.finished_at.tzinfo is not None


def test_latest_runs_and_last_success_per_probe(store: Store) -> None:
    store.record_run(record("a", "ok", minutes_ago=10))
    store.record_run(record("a", "failed", minutes_ago=5, error="down"))
    store.record_run(record("b", "ok", minutes_ago=1))
    latest = {run.probe: run.status for run, _ in store.latest_runs()}
    assert latest == {"a": "failed", "b": "ok"}
    last_ok = store.last_success()
    assert set(last_ok) == {"a", "b"}
    assert last_ok["a"] < last_ok["b"]


def test_reference_round_trip_prefers_pinned(store: Store) -> None:
    rng = np.random.default_rng(0)
    first = rng.normal(size=(5, 8)).astype(np.float32)
    pinned_id = save_reference(store, "p", "canary", "fp1", first, list(range(5)), pinned=True)
    save_reference(store, "p", "canary", "fp1", first * 2, list(range(5)))
    ref = latest_reference(store, "p", "canary")
    assert ref is not None and ref.id == pinned_id and ref.pinned
    np.testing.assert_array_equal(ref.vectors, first)
    assert latest_reference(store, "p", "queries") is None


def test_retention_prunes_old_runs_only(store: Store) -> None:
    old = store.record_run(record("p", minutes_ago=60 * 24 * 10, values=[("x", {}, 1.0)]))
    new = store.record_run(record("p", minutes_ago=1))
    assert store.prune(retention_seconds=7 * 86400).runs == 1
    assert store.run(old) is None and store.run(new) is not None
    assert store.run_values(old) == []


def test_concurrent_writers(store: Store) -> None:
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            for _ in range(5):
                store.record_run(record(f"p{i}"))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.latest_runs()) == 4


def test_schema_newer_than_known_is_refused(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'fffffffff999'"))
    with pytest.raises(SchemaError) as info:
        store.migrate()
    assert str(info.value) == (
        f"store {store.safe_url} has schema revision 'fffffffff999', newer than this ragmon "
        f"knows (head '{migrate.head_revision()}'); upgrade ragmon, or point store.url at "
        "another database"
    )
    assert not store.at_head()


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    store.migrate()
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_unreachable_postgres_is_a_clear_error() -> None:
    store = Store("postgresql://ragmon:hunter2@127.0.0.1:1/ragmon")
    with pytest.raises(StoreUnavailable) as info:
        store.migrate()
    message = str(info.value)
    assert message.startswith("store postgresql+psycopg://ragmon:***@127.0.0.1:1/ragmon is "
                              "unreachable: ")
    assert message.endswith("; check store.url and that the database is running")
    assert "hunter2" not in message


def test_replicas_migrating_together_on_postgres(postgres_url: str) -> None:
    """Three processes (as three replicas would be) upgrade one empty database at once; the
    advisory lock serialises them, so none fails on a half-created table."""
    code = "import sys; from ragmon.monitor.store import Store; Store(sys.argv[1]).migrate()"
    procs = [subprocess.Popen([sys.executable, "-c", code, postgres_url], stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    store = Store(postgres_url)
    try:
        assert store.revision() == migrate.head_revision()
    finally:
        store.close()


def test_installed_wheel_migrates_from_any_directory(tmp_path: Path) -> None:
    """A non-editable install carries migrations/ and can upgrade a fresh database."""
    # Build from a copy of the sources: a build/ folder left in the checkout by an earlier
    # build would otherwise put stale modules into the wheel.
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".tools", ".cache", "build", "dist", "*.egg-info", "__pycache__",
        ".pytest_cache", ".hypothesis", ".bench-venv", "ragmon-demo"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), str(source)], check=True, capture_output=True)
    site = tmp_path / "site"
    (wheel,) = wheels.glob("ragmon-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    # One import namespace: nothing generic (alerts, probes, migrations) at the top level.
    assert {n.split("/")[0] for n in names} == {"ragmon", "ragmon-0.1.0.dist-info"}
    # Every module and data file of the four source folders is in it, under ragmon/.
    wanted = {f"ragmon/{p.relative_to(REPO).as_posix()}"
              for folder in ("monitor", "probes", "alerts", "migrations")
              for p in (REPO / folder).rglob("*")
              if p.is_file() and "__pycache__" not in p.parts}
    assert wanted - set(names) == set()
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(site), str(wheel)], check=True, capture_output=True)
    config = tmp_path / "ragmon.yaml"
    config.write_text("store: {url: 'sqlite:///installed.db'}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-I", "-c",
                           f"import sys; sys.path.insert(0, {str(site)!r}); "
                           "from ragmon.monitor.app import main; sys.exit(main())",
                           "migrate", "-c", str(config)],
                          cwd=elsewhere, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert str(site) in subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); "
         "import ragmon.migrations as m; print(m.__file__)"], capture_output=True, text=True,
        env=env,
    ).stdout
    assert f"-> {migrate.head_revision()}" in proc.stdout
    assert (tmp_path / "installed.db").exists()


def test_a_file_that_is_not_a_database_is_one_line_through_the_cli(tmp_path: Path) -> None:
    (tmp_path / "notes.db").write_text("these are notes, not a database " * 10)
    config = tmp_path / "ragmon.yaml"
    config.write_text("store: {url: 'sqlite:///notes.db'}\n")
    proc = subprocess.run([sys.executable, "-m", "ragmon.monitor", "migrate", "-c", str(config)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr == (
        f"ragmon: error: store sqlite:///{tmp_path / 'notes.db'} is not a SQLite database (file "
        "is not a database); point store.url at a ragmon database or at a new file\n")


def test_a_full_disk_is_named_as_such_and_nothing_is_half_written(tmp_path: Path) -> None:
    """SQLite's own limit (max_page_count) gives the real "database or disk is full"."""
    from sqlalchemy import event

    store = Store(f"sqlite:///{tmp_path / 'ragmon.db'}")
    store.migrate()
    now = datetime.now(UTC)
    store.record_run(RunRecord("p", "canary", None, now, now, "ok"))
    event.listen(store.engine, "connect",
                 lambda conn, _: conn.execute("PRAGMA max_page_count = 1"))
    store.engine.dispose()  # new connections get the limit
    big = RunRecord("p", "canary", None, now, now, "ok", details={"blob": "x" * 200_000})
    try:
        with pytest.raises(StoreError, match=r"the disk is full \(database or disk is full\); "
                                             r"free space on its volume or lower store.retention"):
            store.record_run(big)
        assert len(store.runs("p")) == 1  # the failed run is absent, not half-written
    finally:
        store.close()


def test_replicas_migrating_one_sqlite_file_together(tmp_path: Path) -> None:
    """Three daemons sharing one SQLite file start together, five times: the upgrade is one
    transaction under the file's write lock, so none fails on a table another created
    (before, 2 of 8 such starts failed with "table probe_runs already exists")."""
    code = ("import sys; from ragmon.monitor.store import Store; s = Store(sys.argv[1]); "
            "s.migrate(); s.close()")
    for trial in range(5):
        url = f"sqlite:///{tmp_path / f'shared-{trial}.db'}"
        procs = [subprocess.Popen([sys.executable, "-c", code, url], stderr=subprocess.PIPE,
                                  text=True) for _ in range(3)]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], errors
        store = Store(url)
        try:
            assert store.revision() == migrate.head_revision()
        finally:
            store.close()
