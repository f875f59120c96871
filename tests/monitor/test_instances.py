"""Sidecar identity in the foundation, on SQLite and a real PostgreSQL: ``deployment`` in the
config, runs stored and read per instance, the ``ragmon_instance`` label on /metrics, and
migration 0007 keeping the rows written before it (they belong to instance "")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from ragmon.monitor.app import default_plugins, load_config
from ragmon.monitor.errors import ConfigError
from ragmon.monitor.metrics import StoreCollector
from ragmon.monitor.store import RunRecord, Store
from ragmon.probes.drift.state import peek_window

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def record(probe: str, status: str = "ok", value: float = 0.5, at: datetime = T0) -> RunRecord:
    return RunRecord(probe=probe, kind="canary", target=None, started_at=at,
                     finished_at=at + timedelta(seconds=1), status=status,
                     values=[("canary_cosine_min", {"embedder": "minilm"}, value)])


# --- config -------------------------------------------------------------------------------

def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str,
               env: dict[str, str]) -> tuple[str, str] | list[str]:
    for name in ("POD_NAME", "HOSTNAME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "ragmon.yaml"
    path.write_text(body)
    try:  # the environment the daemon sees (the variables only name the pod)
        config = load_config(path)
    except ConfigError as exc:
        return [str(i).replace(f"{tmp_path}/", "") for i in exc.issues]
    return config.deployment.mode, config.deployment.name


@pytest.mark.parametrize(("body", "env", "expected"), [
    ("{}", {"POD_NAME": "rag-0"}, ("standalone", "")),
    ("deployment: {mode: sidecar}", {"POD_NAME": "rag-0", "HOSTNAME": "h"}, ("sidecar", "rag-0")),
    ("deployment: {mode: sidecar}", {"HOSTNAME": "rag-1"}, ("sidecar", "rag-1")),
    ("deployment: {mode: sidecar, instance: pod-a}", {"POD_NAME": "x"}, ("sidecar", "pod-a")),
    ("deployment: {instance: eu-1}", {}, ("standalone", "eu-1")),
    ("deployment: {mode: sidecar}", {},
     ["ragmon.yaml: deployment: mode 'sidecar' needs a name for this pod: set "
      "deployment.instance, or $POD_NAME (the Kubernetes downward API) or $HOSTNAME"]),
    ("deployment: {mode: sidecar, instance: 'a pod'}", {},
     ["ragmon.yaml: deployment.instance: 'a pod' is not an instance name: use letters, "
      "digits, '.', '_', '-' or ':' (at most 200), like a pod name"]),
    ("deployment: {mode: pod}", {},
     ["ragmon.yaml: deployment.mode: Input should be 'standalone' or 'sidecar', got 'pod'"]),
])
def test_deployment_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str,
                            env: dict[str, str], expected: object) -> None:
    assert deployment(tmp_path, monkeypatch, body, env) == expected


# --- runs per instance --------------------------------------------------------------------

def test_runs_are_stored_and_read_per_instance(store_url: str, store: Store) -> None:
    a, b = Store(store_url, instance="pod-a"), Store(store_url, instance="pod-b")
    try:
        a.record_run(record("canary", value=0.25))
        b.record_run(record("canary", status="failed", at=T0 + timedelta(minutes=1)))
        store.record_run(record("canary", value=0.75, at=T0 + timedelta(minutes=2)))
        newest = {s.instance: [(r.instance, r.status, [v.value for v in values])
                               for r, values in s.latest_runs(["canary"])]
                  for s in (a, b, store)}
        assert newest == {"pod-a": [("pod-a", "ok", [0.25])], "pod-b": [("pod-b", "failed", [0.5])],
                          "": [("", "ok", [0.75])]}
        assert set(a.last_success(["canary"])) == {"canary"}
        assert b.last_success(["canary"]) == {} and b.last_success() == {}
        assert [r.instance for r in a.runs("canary")] == ["pod-a"]
        assert [r.probe for r, _ in b.latest_runs()] == ["canary"]
    finally:
        a.close()
        b.close()


def scrape(store: Store, tmp_path: Path) -> CollectorRegistry:
    path = tmp_path / "ragmon.yaml"
    path.write_text("embedders: {minilm: {kind: sentence-transformers}}\n"
                    "probes: {canary: {kind: canary, embedder: minilm}}\n")
    plugins = default_plugins()
    registry = CollectorRegistry()
    registry.register(StoreCollector(store, load_config(path, plugins=plugins),
                                     plugins.metric_specs()))
    return registry


def test_a_sidecar_labels_its_series_and_exports_only_its_own(
    store_url: str, store: Store, tmp_path: Path,
) -> None:
    sidecar = Store(store_url, instance="pod-a")
    try:
        sidecar.record_run(record("canary", value=0.25))
        store.record_run(record("canary", value=0.75))
        mine = scrape(sidecar, tmp_path)
        labels = {"probe": "canary", "kind": "canary", "target": "", "embedder": "minilm"}
        assert mine.get_sample_value("ragmon_canary_cosine_min",
                                     {**labels, "ragmon_instance": "pod-a"}) == 0.25
        assert mine.get_sample_value("ragmon_canary_cosine_min", labels) is None
        assert mine.get_sample_value("ragmon_probe_interval_seconds", {
            "probe": "canary", "kind": "canary", "target": "", "ragmon_instance": "pod-a"}) == 300
        standalone = scrape(store, tmp_path)  # no label: dashboards and rules unchanged
        assert standalone.get_sample_value("ragmon_canary_cosine_min", labels) == 0.75
    finally:
        sidecar.close()


# --- migration 0007 -----------------------------------------------------------------------

def test_rows_written_before_instances_belong_to_the_standalone_instance(
    store_url: str,
) -> None:
    old = Store(store_url)
    try:
        old.migrate("0006")
        with old.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO probe_runs (probe, kind, started_at, finished_at, status, details) "
                "VALUES ('canary', 'canary', :t, :t, 'ok', '{}')"), {"t": T0})
            conn.execute(text(
                "INSERT INTO drift_reservoir_state (probe, window_start, seen, tail) "
                "VALUES ('query-drift', :t, 1, '{}')"), {"t": T0})
            conn.execute(text(
                "INSERT INTO drift_reservoir (probe, slot, received_at, text) "
                "VALUES ('query-drift', 0, :t, 'how do I reset a password')"), {"t": T0})
        old.migrate()
        (run, _), = old.latest_runs(["canary"])
        assert run.instance == ""
        window = peek_window(old, "query-drift")
        assert (window.seen, [i.text for i in window.items]) == (1, ["how do I reset a password"])
        sidecar = Store(store_url, instance="pod-a")
        try:
            assert sidecar.latest_runs(["canary"]) == []
            assert peek_window(sidecar, "query-drift").items == []
        finally:
            sidecar.close()
        old.migrate("0006")  # and back: the instance columns and keys go again
        old.migrate()
    finally:
        old.close()


def test_downgrading_below_instances_refuses_while_sidecar_rows_exist(store_url: str) -> None:
    """Without the instance column, two sidecars' reservoirs and alert states would collide
    on their old keys, and every sidecar's runs and baselines would merge into one history:
    the downgrade refuses, before it changes anything, until those rows are gone."""
    from sqlalchemy import inspect

    from ragmon.monitor.errors import SchemaError
    from ragmon.monitor.store import migrate

    store = Store(store_url)
    try:
        store.migrate()
        head = store.revision()
        with store.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO probe_runs (probe, instance, kind, started_at, finished_at, "
                "status, details) VALUES ('canary', 'pod-b', 'canary', :t, :t, 'ok', '{}')"),
                {"t": T0})
            for instance in ("", "pod-a"):
                conn.execute(text(
                    "INSERT INTO drift_reservoir (probe, instance, slot, received_at, text) "
                    "VALUES ('query-drift', :i, 0, :t, 'reset a password')"),
                    {"i": instance, "t": T0})
        with pytest.raises(SchemaError) as caught:
            migrate.downgrade(store.engine, "0006")
        assert str(caught.value) == (
            "cannot downgrade the schema below revision 0007: drift_reservoir, probe_runs "
            "hold rows of sidecar instances 'pod-a', 'pod-b', which would merge into one "
            "history without the instance column; delete or export those instances' rows "
            "first (their instance is not '')")
        assert store.revision() == head
        with store.engine.connect() as conn:
            assert "instance" in {c["name"] for c in inspect(conn).get_columns("drift_reservoir")}
            assert conn.execute(text("SELECT count(*) FROM drift_reservoir")).scalar() == 2
            assert conn.execute(text("SELECT count(*) FROM probe_runs")).scalar() == 1
        with store.engine.begin() as conn:
            for table in ("probe_runs", "drift_reservoir"):
                conn.execute(text(f"DELETE FROM {table} WHERE instance <> ''"))
        migrate.downgrade(store.engine, "0006")
        assert store.revision() == "0006"
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT text FROM drift_reservoir")).scalars().all() == [
                "reset a password"]
        store.migrate()
        assert store.revision() == head
    finally:
        store.close()
