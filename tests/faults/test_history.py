"""History over months, with real parts: the real store, its migrations and retention, the
real metrics collector, recall baseline and drift alarm-state lookups, a real daemon.

Found by a 38-minute soak test (every probe every 10-15 s): a prune removed 496 runs but
``drift_statistics``, ``drift_cluster_shifts`` and ``reference_samples`` kept growing; the
pinned recall baseline was deleted with its run (its foreign key cascades); the prune bound
one parameter per run id, so a backlog above SQLite's variable limit failed, saying the
store was unreachable, every 6 hours; each /metrics scrape grouped all of ``probe_runs``
(3 ms at 645 runs, 142 ms at 100,000), and so did the recall baseline lookup and the drift
alarm state; retention ran 6 hours after start, so a daemon restarted more often never
cleaned the alert outbox.

The large history (100,000 runs over 300 days, 70% of them older than the 90-day retention)
is written by core ``executemany`` inserts. Costs are compared as ratios with a store of 30
runs (medians, the two stores measured alternately), never as absolute times: the lookups
must not grow with the history. On PostgreSQL the tables are ANALYZEd after the bulk insert,
as autovacuum would after a change that size; the planner needs those statistics.
"""

from __future__ import annotations

import logging
import sqlite3
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event, func, insert, select, text

from ragmon.alerts.tables import AlertNotification
from ragmon.monitor.app import default_plugins, load_config, retention_parts
from ragmon.monitor.config import ProbeConfig, RootConfig
from ragmon.monitor.daemon import Daemon
from ragmon.monitor.http import free_port
from ragmon.monitor.metrics import StoreCollector
from ragmon.monitor.plugins import probe_spec
from ragmon.monitor.probe import Deadline, Probe, ProbeResult
from ragmon.monitor.store import RETENTION_BATCH, RunRecord, Store
from ragmon.monitor.store.models import ProbeRun, QueryResult, RunValue
from ragmon.probes.drift import state
from ragmon.probes.drift.tables import DriftClusterShift, DriftStatistic
from ragmon.probes.recall import history
from ragmon.probes.recall.tables import RecallBaseline
from ragmon.probes.references import ReferenceSample, save_reference

RUNS = 100_000
DAYS = 300
RETENTION = 90 * 86400.0
PROBES = (("golden", "recall"), ("canary", "canary"), ("traffic", "drift"))
MAX_RATIO = 2.0
CALLS = 21
VECTORS = np.zeros((4, 8), np.float32).tobytes()

# Reference samples at fixed ids: recall's query samples A (named by the first third of the
# recall runs, the pinned baseline among them), B (the second third) and C (the rest); the
# canary's only reference; a pinned drift reference; rolling drift windows from id 100 on.
SAMPLE_A, SAMPLE_B, SAMPLE_C, CANARY_REF, PINNED_REF = 1, 2, 3, 4, 5


# --- the history, written fast --------------------------------------------------------------

def bulk_history(store: Store, runs: int, now: datetime, days: float = DAYS) -> dict[str, Any]:
    """``runs`` probe runs spread evenly over the ``days`` before ``now``, round robin over
    PROBES, with what each kind stores: recall runs (golden set v1 for the first 60%, then
    v2; every 5th regressed; details naming their reference sample; two query rows), drift
    runs (a statistic per method, one cluster shift each, a rolling reference window), two
    values per run, every 11th run failed. Core inserts in chunks; returns ids of note."""
    start = now - timedelta(days=days)
    step = (now - start) / runs
    recall_seen = 0
    recall_total = (runs + 2) // 3
    stat_id = 0
    pinnable: int | None = None
    refs = [
        _ref(SAMPLE_A, "golden", "recall-queries", start),
        _ref(SAMPLE_B, "golden", "recall-queries", start + (now - start) / 3),
        _ref(SAMPLE_C, "golden", "recall-queries", start + 2 * (now - start) / 3),
        _ref(CANARY_REF, "canary", "canary", start),
        _ref(PINNED_REF, "traffic-pinned", "queries", start, pinned=True),
    ]
    chunk = 20_000
    with store.engine.begin() as conn:
        conn.execute(insert(ReferenceSample), refs)
        for lo in range(0, runs, chunk):
            run_rows: list[dict[str, Any]] = []
            values: list[dict[str, Any]] = []
            queries: list[dict[str, Any]] = []
            stats: list[dict[str, Any]] = []
            shifts: list[dict[str, Any]] = []
            windows: list[dict[str, Any]] = []
            for i in range(lo, min(runs, lo + chunk)):
                probe, kind = PROBES[i % 3]
                run_id, end = i + 1, start + step * (i + 1)
                ok = i % 11 != 5
                details: dict[str, Any] = {}
                version = None
                if kind == "recall":
                    third = 3 * recall_seen // recall_total
                    version = "v1" if recall_seen < 0.6 * recall_total else "v2"
                    verdict = "regressed" if recall_seen % 5 == 4 else "healthy"
                    details = {"verdict": verdict, "pad": "x" * 600,
                               "references": {"queries": (SAMPLE_A, SAMPLE_B, SAMPLE_C)[third]}}
                    if pinnable is None and ok and verdict == "healthy" and recall_seen > 20:
                        pinnable = run_id
                    recall_seen += 1
                    queries += [{"run_id": run_id, "query_id": f"q{j}", "status": "ok",
                                 "data": {"live": {"recall": {"10": 1.0}}}} for j in range(2)]
                run_rows.append({
                    "id": run_id, "probe": probe, "kind": kind, "target": None,
                    "started_at": end - timedelta(seconds=1), "finished_at": end,
                    "status": "ok" if ok else "failed", "error": None if ok else "down",
                    "details": details, "golden_version": version,
                    "embedder_fingerprint": None, "target_fingerprint": None,
                })
                values += [{"run_id": run_id, "name": name, "labels": "", "value": 1.0}
                           for name in ("a", "b")]
                if kind == "drift":
                    windows.append(_ref(100 + run_id, probe, "queries", end))
                    for method in ("mmd", "classifier"):
                        stat_id += 1
                        stats.append(_stat(stat_id, probe, method, end, {"recent": [False]}))
                        shifts.append({"statistic_id": stat_id, "direction": "grew", "rank": 0,
                                       "cluster": 1, "reference_share": 0.1,
                                       "current_share": 0.2, "change": 0.1, "label": None,
                                       "examples": []})
            conn.execute(insert(ProbeRun), run_rows)
            conn.execute(insert(RunValue), values)
            conn.execute(insert(QueryResult), queries)
            conn.execute(insert(ReferenceSample), windows)
            conn.execute(insert(DriftStatistic), stats)
            conn.execute(insert(DriftClusterShift), shifts)
        # A method that ran only once, long ago: its one row is its alarm state.
        stat_id += 1
        conn.execute(insert(DriftStatistic), [_stat(stat_id, "traffic", "centroid",
                                                     start + step, {"recent": [True]})])
        if store.dialect == "postgresql":
            for table in ("probe_runs", "reference_samples", "drift_statistics"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))"))
    if store.dialect == "postgresql":
        with store.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")  # what autovacuum does after a change this size
            conn.commit()
    return {"pinnable": pinnable}


def _ref(ref_id: int, probe: str, source: str, at: datetime,
         pinned: bool = False) -> dict[str, Any]:
    return {"id": ref_id, "probe": probe, "source": source, "created_at": at,
            "embedder_fingerprint": "fp", "dimension": 8, "n": 4, "vectors": VECTORS,
            "item_ids": [], "window_start": None, "window_end": None, "pinned": pinned,
            "details": {}}


def _stat(stat_id: int, probe: str, method: str, end: datetime,
          alarm_state: dict[str, Any]) -> dict[str, Any]:
    return {"id": stat_id, "probe": probe, "source": "queries", "method": method,
            "window_start": None, "window_end": end, "reference_id": None, "n_reference": 4,
            "n_current": 4, "statistic": 0.1, "p_value": 0.5, "threshold": None,
            "drifted": False, "alarm": False, "details": {"alarm_state": alarm_state}}


def write_config(tmp_path: Path, url: str, **store: Any) -> Path:
    (tmp_path / "golden.jsonl").write_text(
        '{"id": "q1", "query": "json", "relevant": {"json.dumps#0": 1}}\n')
    cfg = {
        "store": {"url": url, **store},
        "embedders": {"minilm": {"kind": "sentence-transformers", "model": "all-MiniLM-L6-v2"}},
        "targets": {"docs": {"kind": "faiss", "path": "docs.faiss", "embedder": "minilm"}},
        "golden_sets": {"g": {"path": "golden.jsonl"}},
        "probes": {"golden": {"kind": "recall", "target": "docs", "golden_set": "g"},
                   "canary": {"kind": "canary", "embedder": "minilm"},
                   "traffic": {"kind": "drift", "source": "queries", "embedder": "minilm"}},
    }
    path = tmp_path / "ragmon.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def count(store: Store, model: type[Any], *where: Any) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text_out = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text_out) for s in family.samples}


def medians(calls: dict[str, Callable[[], Any]], n: int = CALLS) -> dict[str, float]:
    """Median seconds of each call, the calls interleaved so that both see the same machine."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for fn in calls.values():
        fn()
        fn()
    for _ in range(n):
        for name, fn in calls.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def stock_sqlite_variable_limit(store: Store) -> None:
    """The stock SQLite build's limit of bound variables per statement (32,766); Debian's
    own build raises it, which would hide the failure this tests."""
    event.listen(store.engine, "connect", lambda conn, _record: conn.setlimit(
        sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32766))
    store.engine.dispose()


@pytest.fixture
def two_stores(store_url: str, tmp_path: Path) -> Iterator[tuple[Store, Store, RootConfig]]:
    """The store under test and a small one beside it on the same backend (both empty,
    migrated)."""
    big = Store(store_url)
    big.migrate()
    small = Store(f"sqlite:///{tmp_path / 'small.db'}" if big.dialect == "sqlite" else
                  _sibling_database(store_url))
    small.migrate()
    config = load_config(write_config(tmp_path, store_url), environ={})
    try:
        yield big, small, config
    finally:
        small.close()
        big.close()
        if big.dialect == "postgresql":
            _drop_database(small.engine.url.database or "")


def _sibling_database(url: str) -> str:
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(url)
    name = f"{base.database}_small"
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    _SIBLINGS[name] = admin
    return base.set(database=name).render_as_string(hide_password=False)


_SIBLINGS: dict[str, str] = {}


def _drop_database(name: str) -> None:
    import psycopg

    admin = _SIBLINGS.pop(name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- 100,000 runs -----------------------------------------------------------------------------

def test_large_history_costs_the_same_and_retention_clears_it(
    two_stores: tuple[Store, Store, RootConfig],
) -> None:
    big, small, config = two_stores
    now = datetime.now(UTC)
    started = time.monotonic()
    noted = bulk_history(big, RUNS, now)
    bulk_history(small, 30, now)
    generated = time.monotonic() - started
    assert count(big, ProbeRun) == RUNS

    # Scrapes, the recall baseline (automatic: the first healthy run of golden set v2, which
    # began after 20,000 runs of v1) and the drift alarm state cost what they cost on 30 runs.
    registries = {}
    for name, store in (("big", big), ("small", small)):
        registries[name] = CollectorRegistry()
        registries[name].register(StoreCollector(store, config, config.plugins.metric_specs()))
    for store in (big, small):
        found = history.find_baseline(store, "golden", "v2")
        assert found is not None and found.how == "first healthy run"
        assert found.run.golden_version == "v2"
    cost = medians({
        "scrape big": lambda: generate_latest(registries["big"]),
        "scrape small": lambda: generate_latest(registries["small"]),
        "baseline big": lambda: history.find_baseline(big, "golden", "v2"),
        "baseline small": lambda: history.find_baseline(small, "golden", "v2"),
        "alarm big": lambda: state.previous_alarm_state(big, "traffic", "mmd"),
        "alarm small": lambda: state.previous_alarm_state(small, "traffic", "mmd"),
    })
    ratios = {what: cost[f"{what} big"] / cost[f"{what} small"]
              for what in ("scrape", "baseline", "alarm")}
    print(f"\n{big.dialect}: {RUNS} runs generated in {generated:.1f}s; medians (ms) "
          + ", ".join(f"{k} {v * 1000:.2f}" for k, v in cost.items())
          + "; ratios " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    assert all(r <= MAX_RATIO for r in ratios.values()), ratios
    assert_index_served(big)

    # Retention: 70,000 runs are older than 90 days, more than one statement may bind on
    # SQLite (32,766) or PostgreSQL (65,535). An old run is the pinned recall baseline.
    if big.dialect == "sqlite":
        stock_sqlite_variable_limit(big)
    pinned = history.pin_baseline(big, noted["pinnable"], note="the good week")
    cutoff = now - timedelta(seconds=RETENTION)
    old_runs = count(big, ProbeRun, ProbeRun.finished_at < cutoff)
    assert old_runs > 65_535
    before = {m.__tablename__: count(big, m) for m in (DriftStatistic, DriftClusterShift,
                                                        ReferenceSample)}
    started = time.monotonic()
    report = big.prune(RETENTION, now=now, parts=retention_parts(config))
    print(f"prune: {report.summary()} ({time.monotonic() - started:.1f}s)")
    assert report.errors == []
    assert report.runs == old_runs - 1
    assert report.largest_batch <= RETENTION_BATCH
    assert report.batches >= old_runs // RETENTION_BATCH
    assert report.kept["run(s) pinned as a recall baseline"] == 1
    assert count(big, ProbeRun, ProbeRun.finished_at < cutoff) == 1

    # The pin survives, and the next run compares with it.
    assert count(big, RecallBaseline) == 1
    baseline = history.find_baseline(big, "golden", "v2")
    assert baseline is not None and (baseline.how, baseline.run.id) == ("pinned", pinned.id)

    # The drift history shrank; what the alarm state needs and every pinned or still-used
    # reference is kept.
    after = {m.__tablename__: count(big, m) for m in (DriftStatistic, DriftClusterShift,
                                                       ReferenceSample)}
    assert all(after[t] < 0.4 * before[t] for t in before), (before, after)
    with big.session() as s:
        old_stats = s.execute(select(DriftStatistic.probe, DriftStatistic.method)
                              .where(DriftStatistic.window_end < cutoff)).all()
        orphans = s.scalar(select(func.count()).select_from(DriftClusterShift).where(
            DriftClusterShift.statistic_id.not_in(select(DriftStatistic.id))))
        old_refs = set(s.scalars(select(ReferenceSample.id)
                                 .where(ReferenceSample.created_at < cutoff)))
    assert [tuple(r) for r in old_stats] == [("traffic", "centroid")]
    assert orphans == 0
    assert state.previous_alarm_state(big, "traffic", "centroid") == {"recent": [True]}
    newest_old_window = max(i for i in old_refs if i > 100)
    assert old_refs == {SAMPLE_A, SAMPLE_C, CANARY_REF, PINNED_REF, newest_old_window}
    assert report.kept["pinned reference(s)"] == 1
    assert report.kept["reference sample(s) of a pinned recall baseline"] == 1

    # The store's size is measured again after the prune, and exported.
    got = samples(registries["big"])
    rows = got[("ragmon_store_rows", (("table", "probe_runs"),))]
    exact = count(big, ProbeRun)
    assert rows == exact if big.dialect == "sqlite" else abs(rows - exact) <= 0.05 * exact
    assert got[("ragmon_store_size_bytes", ())] > 10 * 2**20


def assert_index_served(store: Store) -> None:
    """Every statement of the scrape, the baseline lookup and the alarm state reads the
    history through an index: no full scan and no sort of probe_runs or drift_statistics."""
    statements: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        statements.append((statement, params))

    probes = ["golden", "canary", "traffic"]
    event.listen(store.engine, "before_cursor_execute", grab)
    try:
        store.latest_runs(probes)
        store.last_success(probes)
        history.find_baseline(store, "golden", "v2")
        history.find_baseline(store, "golden", "v3")  # no run of it: the fallback walk
        state.previous_alarm_state(store, "traffic", "mmd")
    finally:
        event.remove(store.engine, "before_cursor_execute", grab)
    explain = "EXPLAIN " if store.dialect == "postgresql" else "EXPLAIN QUERY PLAN "
    checked = 0
    with store.engine.connect() as conn:
        for statement, params in statements:
            if "probe_runs" not in statement and "drift_statistics" not in statement:
                continue
            plan = "\n".join(str(row[-1] if store.dialect == "sqlite" else row[0])
                             for row in conn.exec_driver_sql(explain + statement, params))
            bad = ("Seq Scan", "Sort") if store.dialect == "postgresql" else (
                "SCAN probe_runs", "SCAN drift_statistics", "TEMP B-TREE")
            assert not any(b in plan for b in bad), f"{statement}\n{plan}"
            checked += 1
    assert checked >= 8


# --- retention, item by item, on both backends -------------------------------------------------

def test_retention_deletes_old_drift_history_but_keeps_alarm_state_and_pins(
    store: Store, tmp_path: Path,
) -> None:
    config = load_config(write_config(tmp_path, store.engine.url.render_as_string(False)),
                         environ={})
    now = datetime.now(UTC)
    old, new = now - timedelta(days=100), now - timedelta(hours=1)

    def window(method: str, end: datetime, recent: list[bool]) -> int:
        row = DriftStatistic(
            probe="traffic", source="queries", method=method, window_start=None,
            window_end=end, reference_id=None, n_reference=50, n_current=50, statistic=0.2,
            p_value=0.01, threshold=None, drifted=recent[-1], alarm=False,
            details={"alarm_state": {"recent": recent, "cusum": 0.0, "alarm": False}})
        shift = DriftClusterShift(direction="grew", rank=0, cluster=3, reference_share=0.1,
                                  current_share=0.3, change=0.2, label="json",
                                  examples=["how to dump json"])
        (stat_id,) = state.save_statistics(store, [row], {0: [shift]})
        return stat_id

    old_mmd = [window("mmd", old + timedelta(minutes=i), [False]) for i in range(5)]
    new_mmd = window("mmd", new, [False, True])
    old_classifier = window("classifier", old, [True, True])  # its only window: the state
    vectors = np.ones((3, 4), np.float32)
    pinned = save_reference(store, "traffic", "queries", "fp", vectors, [1, 2, 3], pinned=True)
    rolled = [save_reference(store, "traffic", "queries", "fp", vectors, [1, 2, 3])
              for _ in range(3)]
    current = save_reference(store, "canary", "canary", "fp", vectors, [1, 2, 3])
    with store.session() as s:
        s.execute(ReferenceSample.__table__.update().where(
            ReferenceSample.id.in_([pinned, *rolled, current])).values(created_at=old))

    report = store.prune(RETENTION, parts=retention_parts(config))

    with store.session() as s:
        stats = set(s.scalars(select(DriftStatistic.id)))
        shifts = set(s.scalars(select(DriftClusterShift.statistic_id)))
        refs = set(s.scalars(select(ReferenceSample.id)))
    assert stats == {new_mmd, old_classifier} == shifts
    assert not set(old_mmd) & stats
    assert state.previous_alarm_state(store, "traffic", "classifier")["recent"] == [True, True]
    assert state.previous_alarm_state(store, "traffic", "mmd")["recent"] == [False, True]
    # Never a pinned reference; the newest of each probe and source stays, it is in use.
    assert refs == {pinned, rolled[-1], current}
    assert report.removed["drift_statistics"] == 5 and report.removed["reference_samples"] == 2
    assert +report.kept == {
        "newest drift statistic(s) of a probe and method (the alarm state)": 1,
        "pinned reference(s)": 1,
        "reference(s) still in use (the newest of a probe and source)": 2,
    }


def test_a_backlog_above_the_variable_limit_is_deleted_in_batches(tmp_path: Path) -> None:
    """SQLite with the smallest common limit (999 variables): 3,000 old runs."""
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    store.migrate()
    try:
        event.listen(store.engine, "connect", lambda conn, _record: conn.setlimit(
            sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999))
        store.engine.dispose()
        now = datetime.now(UTC)
        bulk_history(store, 3000, now - timedelta(days=100), days=10)
        store.record_run(RunRecord("canary", "canary", None, now, now, "ok"))
        report = store.prune(RETENTION, batch_size=250)
        assert report.runs == 3000 and count(store, ProbeRun) == 1
        assert report.batches >= 12 and report.largest_batch == 250
    finally:
        store.close()


def test_store_size_is_exported_cached_and_refreshed_by_retention(
    store: Store, tmp_path: Path,
) -> None:
    config = load_config(write_config(tmp_path, store.engine.url.render_as_string(False)),
                         environ={})
    now = datetime.now(UTC)
    for minutes in (60 * 24 * 100, 5, 1):
        end = now - timedelta(minutes=minutes)
        store.record_run(RunRecord("canary", "canary", None, end, end, "ok",
                                   values=[("canary_cosine_min", {"embedder": "m"}, 1.0)]))
    registry = CollectorRegistry()
    registry.register(StoreCollector(store, config, config.plugins.metric_specs()))
    got = samples(registry)
    assert got[("ragmon_store_rows", (("table", "probe_runs"),))] == 3
    assert got[("ragmon_store_rows", (("table", "run_values"),))] == 3
    assert got[("ragmon_store_rows", (("table", "drift_statistics"),))] == 0
    size = got[("ragmon_store_size_bytes", ())]
    if store.dialect == "sqlite":
        path = Path(store.engine.url.database or "")
        on_disk = path.stat().st_size + Path(f"{path}-wal").stat().st_size
        assert 0 < size <= on_disk
    else:
        with store.engine.connect() as conn:
            actual = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
        assert 0.5 * actual < size <= actual * 1.5

    # Cached: more runs do not show until it is measured again (no count per scrape) ...
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_: statements.append(statement))
    store.record_run(RunRecord("canary", "canary", None, now, now, "ok"))
    got = samples(registry)
    assert got[("ragmon_store_rows", (("table", "probe_runs"),))] == 3
    assert not [s for s in statements if "count(" in s.lower()]
    # ... which retention does: one run older than 90 days is gone, four are left.
    store.prune(RETENTION)
    got = samples(registry)
    assert got[("ragmon_store_rows", (("table", "probe_runs"),))] == 3
    assert got[("ragmon_store_retention_timestamp_seconds", ())] >= now.timestamp()
    assert got[("ragmon_store_size_timestamp_seconds", ())] >= now.timestamp()


# --- the retention schedule of a real daemon ---------------------------------------------------

class QuietConfig(ProbeConfig):
    kind: Literal["test-quiet"]


class QuietProbe(Probe):
    """Test-only kind: does nothing, so the daemon's own jobs are all there is."""

    kind = "test-quiet"
    Config = QuietConfig
    METRICS: dict[str, Any] = {}

    def run(self, deadline: Deadline) -> ProbeResult:
        return ProbeResult()


def test_daemon_runs_retention_at_start_and_on_its_interval(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"sqlite:///{tmp_path / 'ragmon.db'}"
    store = Store(url)
    store.migrate()
    now = datetime.now(UTC)
    long_ago = now - timedelta(days=30)
    old = [store.record_run(RunRecord("recall", "recall", None, long_ago, long_ago, "ok",
                                      details={"verdict": "healthy"})) for _ in range(2)]
    history.pin_baseline(store, old[0], note="before the migration")
    with store.session() as s:
        s.add(AlertNotification(
            dedup_key="old", rule="r", fingerprint="f", sink="hook", event="firing",
            payload={}, created_at=long_ago, status="sent", attempts=1,
            next_attempt_at=long_ago, sent_at=long_ago))
    store.close()
    plugins = default_plugins().with_probe_kind(probe_spec(QuietProbe))
    path = tmp_path / "ragmon.yaml"
    path.write_text(yaml.safe_dump({
        "store": {"url": url, "retention": "7d", "retention_interval": "2h"},
        "server": {"listen": f"127.0.0.1:{free_port()}", "shutdown_grace": "2s"},
        "probes": {"quiet": {"kind": "test-quiet", "every": "1h"}},
        "alerts": {"sinks": {"hook": {"kind": "webhook", "url": "http://127.0.0.1:9/"}}},
    }))
    daemon = Daemon(load_config(path, plugins=plugins, environ={}), CollectorRegistry())
    caplog.set_level(logging.INFO, logger="ragmon.daemon")
    try:
        daemon.start()
        assert daemon.scheduler is not None and daemon.store is not None
        jobs = {job.id: job for job in daemon.scheduler.get_jobs()}
        for job_id in ("retention", "alerts:retention"):
            assert jobs[job_id].trigger.interval == timedelta(hours=2)
            assert jobs[job_id].next_run_time < now + timedelta(seconds=30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (
            daemon.store.run(old[1]) is not None or count(daemon.store, AlertNotification)
        ):
            time.sleep(0.2)
        assert daemon.store.run(old[1]) is None  # the old run is gone ...
        assert daemon.store.run(old[0]) is not None  # ... the pinned baseline's is not
        assert count(daemon.store, AlertNotification) == 0  # the outbox was cleaned too
    finally:
        daemon.shutdown()
    kept = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retention:")]
    assert any("removed 1 probe_runs" in m and "kept although older: 1 run(s) pinned as a "
               "recall baseline" in m for m in kept), kept
