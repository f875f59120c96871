"""The daemon for real: a scheduler in UTC, per-probe timeouts, the HTTP endpoints, clean stops.

In-process tests register two test-only probe kinds (a sleeper and a crasher) so timeouts and
failures are deterministic; subprocess tests run `ragmon run` exactly as a container would,
including as PID 1 in its own PID namespace.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from prometheus_client import CollectorRegistry

from ragmon.monitor.app import default_plugins, load_config
from ragmon.monitor.config import ProbeConfig
from ragmon.monitor.daemon import Daemon, probe_trigger
from ragmon.monitor.http import free_port
from ragmon.monitor.http import http_get as get
from ragmon.monitor.plugins import Plugins, probe_spec
from ragmon.monitor.probe import Deadline, MetricSpec, Probe, ProbeResult
from ragmon.monitor.slots import phase
from ragmon.monitor.store import Store


class SleepConfig(ProbeConfig):
    kind: Literal["test-sleep"]
    seconds: float = 0.0
    fail: bool = False
    message: str = "the index said no"


class SleepProbe(Probe):
    """Test-only kind: sleeps (ignoring its deadline, like a hung client call) then reports."""

    kind = "test-sleep"
    Config = SleepConfig
    METRICS = {"test_slept_seconds": MetricSpec("Seconds slept.")}
    started = threading.Event()

    def run(self, deadline: Deadline) -> ProbeResult:
        SleepProbe.started.set()
        time.sleep(self.config.seconds)
        if self.config.fail:
            raise RuntimeError(self.config.message)
        result = ProbeResult()
        result.add("test_slept_seconds", self.config.seconds)
        return result


@pytest.fixture
def sleep_kind() -> Plugins:
    """This install's plugins plus the test kind: a new value, no global is touched."""
    SleepProbe.started.clear()
    return default_plugins().with_probe_kind(probe_spec(SleepProbe))


def write_config(tmp_path: Path, probes: dict[str, Any], **sections: Any) -> Path:
    port = free_port()
    cfg: dict[str, Any] = {
        "store": {"url": f"sqlite:///{tmp_path / 'ragmon.db'}"},
        "server": {"listen": f"127.0.0.1:{port}", "shutdown_grace": "3s"},
        "scheduler": {"heartbeat": "1s"},
        "probes": probes,
        **sections,
    }
    path = tmp_path / "ragmon.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def daemon_factory(sleep_kind: Plugins) -> Iterator[Any]:
    started: list[Daemon] = []

    def make(path: Path) -> Daemon:
        config = load_config(path, environ={}, plugins=sleep_kind)
        daemon = Daemon(config, CollectorRegistry())
        daemon.start()
        started.append(daemon)
        return daemon

    yield make
    for daemon in started:
        daemon.shutdown()


def runs_of(daemon: Daemon, probe: str) -> list[Any]:
    assert daemon.store is not None
    return daemon.store.runs(probe=probe, limit=100)


# --- scheduling -------------------------------------------------------------------------------


def test_jobs_have_stable_ids_utc_coalesce_and_grace(tmp_path: Path, sleep_kind: Plugins,
                                                    daemon_factory: Any) -> None:
    path = write_config(tmp_path, {
        "a": {"kind": "test-sleep", "every": "1h", "jitter": "10s", "misfire_grace": "2m"},
        "b": {"kind": "test-sleep", "cron": "*/5 * * * *", "jitter": "0s"},
    })
    daemon = daemon_factory(path)
    assert daemon.scheduler is not None
    jobs = {job.id: job for job in daemon.scheduler.get_jobs()}
    assert {"probe:a", "probe:b", "heartbeat", "retention"} <= set(jobs)
    a, b = jobs["probe:a"], jobs["probe:b"]
    assert (a.coalesce, a.max_instances, a.misfire_grace_time) == (True, 1, 120)
    assert (b.coalesce, b.max_instances, b.misfire_grace_time) == (True, 1, 300)
    # The jitter is waited after the slot is claimed, so every replica's trigger fires at
    # the same instants: interval slots count from one anchor, shifted by the probe's phase.
    assert a.trigger.jitter is None and str(a.trigger.timezone) == "UTC"
    assert a.trigger.start_date == datetime(2000, 1, 1, tzinfo=UTC) + phase("a", 3600)
    assert phase("a", 3600) != phase("b", 3600)
    assert daemon.schedule.lease(daemon.config.probes["a"]) == 10 + 60 + 30
    assert str(b.trigger.timezone) == "UTC"
    assert b.trigger.jitter is None


def test_cron_trigger_fires_on_the_utc_minute() -> None:
    cfg = load_config_from_dict({"p": {"kind": "canary", "embedder": "e", "cron": "30 2 * * *"}})
    trigger = probe_trigger(cfg.probes["p"])
    fire = trigger.get_next_fire_time(None, datetime(2026, 1, 1, 0, 0, tzinfo=UTC))
    assert fire == datetime(2026, 1, 1, 2, 30, tzinfo=UTC)  # the jitter comes after the claim


def load_config_from_dict(probes: dict[str, Any]) -> Any:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.yaml"
        path.write_text(yaml.safe_dump({
            "embedders": {"e": {"kind": "sentence-transformers"}}, "probes": probes}))
        return load_config(path, environ={})


def test_hung_probe_times_out_and_later_runs_still_happen(
    tmp_path: Path, sleep_kind: Plugins, daemon_factory: Any
) -> None:
    path = write_config(tmp_path, {
        "hung": {"kind": "test-sleep", "seconds": 60, "every": "2s", "timeout": "1s",
                 "jitter": "0s"},
        "healthy": {"kind": "test-sleep", "seconds": 0, "every": "2s", "jitter": "0s"},
    })
    daemon = daemon_factory(path)
    hung = wait_for(lambda: len(runs_of(daemon, "hung")) >= 2 and runs_of(daemon, "hung"),
                    30, "two runs of the hung probe")
    assert {r.status for r in hung} == {"timeout"}
    assert {r.error for r in hung} == {"timed out after 1s"}
    wait_for(lambda: len(runs_of(daemon, "healthy")) >= 2, 20, "two runs of the healthy probe")
    assert {r.status for r in runs_of(daemon, "healthy")} == {"ok"}
    body = get(f"http://127.0.0.1:{daemon.http.port}/metrics")[1]  # type: ignore[union-attr]
    assert 'ragmon_probe_runs_total{probe="hung",status="timeout"}' in body
    assert 'ragmon_probe_success{kind="test-sleep",probe="hung",target=""} 0.0' in body
    assert 'ragmon_probe_success{kind="test-sleep",probe="healthy",target=""} 1.0' in body
    assert "ragmon_probe_abandoned_runs" in body


def test_crashing_probe_is_a_failed_run_not_a_dead_daemon(
    tmp_path: Path, sleep_kind: Plugins, daemon_factory: Any
) -> None:
    path = write_config(tmp_path, {
        "broken": {"kind": "test-sleep", "fail": True, "every": "1s", "jitter": "0s"},
    })
    daemon = daemon_factory(path)
    runs = wait_for(lambda: len(runs_of(daemon, "broken")) >= 2 and runs_of(daemon, "broken"),
                    20, "two failed runs")
    assert {(r.status, r.error) for r in runs} == {("failed", "RuntimeError: the index said no")}
    assert daemon.healthz() == (True, "ok")


def test_a_failed_run_never_stores_a_configured_secret(
    tmp_path: Path, sleep_kind: Plugins, daemon_factory: Any
) -> None:
    """An error that quotes a configured secret (here the password of a target's URL, as a
    driver's parse error can) is stored, exported and notified with the secret masked."""
    url = "postgresql://ragmon:s3cr3t-pw@127.0.0.1:1/rag"
    path = write_config(tmp_path, {
        "leaky": {"kind": "test-sleep", "fail": True, "every": "1s", "jitter": "0s",
                  "message": f"cannot parse {url}"},
    }, targets={"db": {"kind": "pgvector", "url": url, "table": "chunks"}})
    daemon = daemon_factory(path)
    runs = wait_for(lambda: runs_of(daemon, "leaky"), 20, "a failed run")
    assert runs[0].error == "RuntimeError: cannot parse postgresql://ragmon:***@127.0.0.1:1/rag"


# --- health -----------------------------------------------------------------------------------


def test_healthz_and_readyz(tmp_path: Path, sleep_kind: Plugins, daemon_factory: Any) -> None:
    path = write_config(tmp_path, {"p": {"kind": "test-sleep", "every": "1h"}})
    daemon = daemon_factory(path)
    base = f"http://127.0.0.1:{daemon.http.port}"
    assert get(base + "/healthz") == (200, "ok\n")
    assert get(base + "/readyz") == (200, "ok\n")
    assert get(base + "/nope")[0] == 404
    # Schema behind head (the shared database was restored from an old backup): not ready,
    # still alive.
    assert daemon.store is not None
    with daemon.store.engine.begin() as conn:
        head = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0001'")
    assert get(base + "/readyz") == (503, "store schema is not at head (or the store is "
                                          "unreachable)\n")
    assert get(base + "/healthz")[0] == 200
    with daemon.store.engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE alembic_version SET version_num = '{head}'")
    assert get(base + "/readyz") == (200, "ok\n")
    # A stuck scheduler: the heartbeat goes stale and liveness fails.
    daemon.scheduler.pause()  # type: ignore[union-attr]
    status, body = wait_for(lambda: (r := get(base + "/healthz"))[0] == 503 and r, 20,
                            "a stale heartbeat")
    assert body.startswith("scheduler heartbeat is ") and body.rstrip().endswith(
        "old (limit 8s)")


# --- shutdown ---------------------------------------------------------------------------------


def test_shutdown_waits_for_a_run_in_flight_and_stores_it_whole(
    tmp_path: Path, sleep_kind: Plugins, daemon_factory: Any
) -> None:
    path = write_config(tmp_path, {"slow": {"kind": "test-sleep", "seconds": 1.5,
                                            "every": "1h", "jitter": "0s"}})
    daemon = daemon_factory(path)
    assert SleepProbe.started.wait(10)
    daemon.shutdown()  # grace 3s > the run's 1.5s
    store = Store(daemon.config.store.url.get_secret_value())
    [run] = store.runs(probe="slow", limit=10)
    assert run.status == "ok" and run.finished_at is not None
    assert [v.value for v in store.run_values(run.id)] == [1.5]


def test_shutdown_past_grace_leaves_no_half_written_run(
    tmp_path: Path, sleep_kind: Plugins, daemon_factory: Any
) -> None:
    path = write_config(tmp_path, {"slow": {"kind": "test-sleep", "seconds": 30,
                                            "every": "1h", "timeout": "1m", "jitter": "0s"}})
    daemon = daemon_factory(path)
    assert SleepProbe.started.wait(10)
    began = time.monotonic()
    daemon.shutdown()
    assert time.monotonic() - began < 3 + 3  # grace + slack: bounded, not the run's 30s
    store = Store(daemon.config.store.url.get_secret_value())
    assert store.runs(probe="slow", limit=10) == []


# --- as a process -----------------------------------------------------------------------------


def ragmon_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "ragmon.monitor", *args]


@pytest.fixture
def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def test_run_serves_canary_metrics_and_exits_0_on_sigterm(
    tmp_path: Path, child_env: dict[str, str], promtool: str
) -> None:
    """`ragmon run` as a service: the canary runs on schedule, the exposition passes
    `promtool check metrics`, SIGTERM stops it with exit code 0 and every stored run whole."""
    path = write_config(tmp_path, {
        "canary": {"kind": "canary", "embedder": "minilm", "every": "3s", "jitter": "0s",
                   "timeout": "2m"}},
        embedders={"minilm": {"kind": "sentence-transformers", "model": "all-MiniLM-L6-v2"}},
    )
    port = yaml.safe_load(path.read_text())["server"]["listen"].split(":")[1]
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(ragmon_cmd("run", "--config", str(path)), env=child_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: get(base + "/healthz")[0] == 200, 60, "/healthz")
        assert get(base + "/readyz")[0] == 200
        wait_for(lambda: 'ragmon_canary_cosine_min{' in get(base + "/metrics")[1], 120,
                 "a second canary run (the first captures the reference)")
        body = get(base + "/metrics")[1]
        for name in ("ragmon_probe_success", "ragmon_probe_duration_seconds",
                     "ragmon_probe_last_success_timestamp_seconds", "ragmon_probe_runs_total",
                     "ragmon_build_info", "ragmon_canary_changed"):
            assert f"\n{name}{{" in body, name
        assert 'ragmon_embedder_loaded{embedder="minilm"} 1.0' in body
        check = subprocess.run([promtool, "check", "metrics"], input=body, text=True,
                               capture_output=True)
        assert check.returncode == 0, check.stdout + check.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate(timeout=20)[0]  # also closes the pipe
    assert "received SIGTERM, shutting down" in output
    assert "Traceback" not in output
    store = Store(f"sqlite:///{tmp_path / 'ragmon.db'}")
    runs = store.runs(probe="canary", limit=100)
    store.close()
    assert len(runs) >= 2
    assert all(r.finished_at is not None and r.status == "ok" for r in runs)


def test_sigterm_as_pid_1(tmp_path: Path, child_env: dict[str, str]) -> None:
    """In a container the daemon is PID 1, where the kernel drops signals that have no
    handler: the daemon must install its own and still exit 0."""
    path = write_config(tmp_path, {})
    port = yaml.safe_load(path.read_text())["server"]["listen"].split(":")[1]
    proc = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", *ragmon_cmd("run", "-c", str(path))],
        env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_for(lambda: get(f"http://127.0.0.1:{port}/healthz")[0] == 200, 60, "/healthz")
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        [init] = children
        status = Path(f"/proc/{init}/status").read_text().splitlines()
        [nspid] = [line for line in status if line.startswith("NSpid:")]
        assert nspid.split()[-1] == "1"  # PID 1 inside its namespace
        os.kill(int(init), signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate(timeout=20)[0]
    assert "received SIGTERM" in output


def test_sigint_exits_0(tmp_path: Path, child_env: dict[str, str]) -> None:
    path = write_config(tmp_path, {})
    port = yaml.safe_load(path.read_text())["server"]["listen"].split(":")[1]
    proc = subprocess.Popen(ragmon_cmd("run", "-c", str(path)), env=child_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: get(f"http://127.0.0.1:{port}/healthz")[0] == 200, 60, "/healthz")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=20)
