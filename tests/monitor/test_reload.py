"""Config reload on a running daemon: SIGHUP and changed files (a ConfigMap's symlink swap
made the way kubelet makes it), refusal of a bad config, runs in flight left to finish.

In-process daemons use the test-only sleeper kind of test_daemon.py (deterministic run
lengths); the subprocess test runs `ragmon run` and sends it real signals.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from ragmon.monitor.app import default_plugins, load_config
from ragmon.monitor.daemon import Daemon
from ragmon.monitor.http import free_port
from ragmon.monitor.http import http_get as get
from ragmon.monitor.plugins import Plugins, probe_spec
from tests.monitor.test_daemon import SleepProbe, ragmon_cmd, wait_for

GOLDEN = '{"id": "q1", "query": "how do I sort a list", "relevant": ["doc-1"]}\n'


@pytest.fixture
def plugins() -> Plugins:
    return default_plugins().with_probe_kind(probe_spec(SleepProbe))


def config_dict(tmp_path: Path, port: int, probes: dict[str, Any], **sections: Any) -> dict:
    return {
        "store": {"url": f"sqlite:///{tmp_path / 'ragmon.db'}"},
        "server": {"listen": f"127.0.0.1:{port}", "shutdown_grace": "5s"},
        "scheduler": {"heartbeat": "1s"},
        "reload": {"poll": "200ms"},
        "probes": probes,
        **sections,
    }


@pytest.fixture
def started(plugins: Plugins) -> Iterator[Any]:
    daemons: list[Daemon] = []

    def start(path: Path) -> Daemon:
        daemon = Daemon(load_config(path, environ={}, plugins=plugins), CollectorRegistry())
        daemon.start()
        daemons.append(daemon)
        return daemon

    yield start
    for daemon in daemons:
        daemon.shutdown()


def runs(daemon: Daemon, probe: str) -> list[Any]:
    assert daemon.store is not None
    return daemon.store.runs(probe=probe, limit=200)


def sample(daemon: Daemon, name: str, **labels: str) -> float | None:
    return daemon.registry.get_sample_value(name, labels)


def sleeper(every: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "test-sleep", "every": every, "jitter": "0s", **extra}


def test_a_requested_reload_applies_a_new_interval_an_added_and_a_removed_probe(
    tmp_path: Path, started: Any,
) -> None:
    """What SIGHUP does (the handler calls ``reloader.request()``)."""
    port = free_port()
    path = tmp_path / "ragmon.yaml"
    path.write_text(yaml.safe_dump(config_dict(
        tmp_path, port, {"a": sleeper("1h"), "gone": sleeper("1h")}, reload={"watch": False})))
    daemon = started(path)
    wait_for(lambda: runs(daemon, "a") and runs(daemon, "gone"), 20, "the first runs")
    assert daemon.reloader is not None
    path.write_text(yaml.safe_dump(config_dict(
        tmp_path, port, {"a": sleeper("1s"), "b": sleeper("1s")}, reload={"watch": False})))
    time.sleep(0.6)  # watching is off: nothing happens until asked
    assert sample(daemon, "ragmon_config_reload_total") == 0
    daemon.reloader.request()
    wait_for(lambda: len(runs(daemon, "a")) >= 3, 20, "runs of 'a' at its new 1s interval")
    wait_for(lambda: runs(daemon, "b"), 20, "a run of the added probe")
    assert daemon.scheduler is not None
    jobs = {job.id for job in daemon.scheduler.get_jobs()}
    assert "probe:b" in jobs and "probe:gone" not in jobs
    assert len(runs(daemon, "gone")) == 1
    labels = {"probe": "a", "kind": "test-sleep", "target": ""}
    assert sample(daemon, "ragmon_probe_interval_seconds", **labels) == 1.0
    assert sample(daemon, "ragmon_probe_interval_seconds", probe="gone", kind="test-sleep",
                  target="") is None
    assert sample(daemon, "ragmon_config_reload_total") == 1
    assert sample(daemon, "ragmon_config_reload_failures_total") == 0
    assert sample(daemon, "ragmon_config_last_reload_successful") == 1


def kubelet_write(volume: Path, files: dict[str, str], stamp: str) -> None:
    """Update a ConfigMap volume the way kubelet's AtomicWriter does: the files go into a new
    timestamped folder, a ``..data_tmp`` link to it is renamed over ``..data`` (atomic), each
    key is a link ``KEY -> ..data/KEY``, and the previous folder is removed."""
    folder = volume / f"..{stamp}"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    old = os.readlink(volume / "..data") if (volume / "..data").is_symlink() else None
    os.symlink(folder.name, volume / "..data_tmp")
    os.rename(volume / "..data_tmp", volume / "..data")
    for name in files:
        if not (volume / name).is_symlink():
            os.symlink(f"..data/{name}", volume / name)
    if old is not None:
        shutil.rmtree(volume / old)


def test_a_configmap_symlink_swap_is_seen_and_a_bad_one_refused(
    tmp_path: Path, started: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    """The config and its golden set in one ConfigMap volume, with relative paths. A bad
    update is refused and the running config, whose folder kubelet has deleted by then,
    still finds its golden set at the path the config names."""
    port = free_port()
    volume = tmp_path / "config"
    volume.mkdir()

    def files(probes: dict[str, Any], golden: str = GOLDEN, **extra: Any) -> dict[str, str]:
        cfg = config_dict(tmp_path, port, probes,
                          golden_sets={"docs": {"path": "golden.jsonl"}}, **extra)
        return {"ragmon.yaml": yaml.safe_dump(cfg), "golden.jsonl": golden}

    kubelet_write(volume, files({"a": sleeper("1h")}), "2026_12_01_10_00_00.1")
    daemon = started(volume / "ragmon.yaml")
    assert daemon.config.golden_sets["docs"].path == volume / "golden.jsonl"
    kubelet_write(volume, files({"a": sleeper("1h"), "b": sleeper("1h")}),
                  "2026_12_01_10_01_00.2")
    wait_for(lambda: "b" in daemon.config.probes, 10, "the swapped config")
    wait_for(lambda: runs(daemon, "b"), 20, "a run of the probe the swap added")
    assert sample(daemon, "ragmon_config_reload_total") == 1

    caplog.set_level(logging.ERROR, logger="ragmon.reload")
    kubelet_write(volume, files({"a": sleeper("soon"), "b": sleeper("1h", seconds="x")}),
                  "2026_12_01_10_02_00.3")
    wait_for(lambda: sample(daemon, "ragmon_config_reload_failures_total") == 1, 10,
             "the refusal")
    errors = [r.getMessage() for r in caplog.records]
    assert any("probes.a.every" in m and "'soon'" in m for m in errors), errors
    assert any("probes.b.seconds" in m for m in errors), errors
    assert all("\n" not in m for m in errors)
    assert set(daemon.config.probes) == {"a", "b"}
    assert daemon.config.golden_sets["docs"].path.read_text() == GOLDEN
    assert not list(volume.glob("..2026_12_01_10_01_00.2"))  # kubelet removed it
    assert sample(daemon, "ragmon_config_last_reload_successful") == 0
    assert sample(daemon, "ragmon_config_reload_total") == 2
    time.sleep(1)  # no retry of the same refused files at every poll
    assert sample(daemon, "ragmon_config_reload_total") == 2

    # A golden set that no longer parses is refused too (check-config's file checks).
    kubelet_write(volume, files({"a": sleeper("1h")}, golden="{not json\n"),
                  "2026_12_01_10_03_00.4")
    wait_for(lambda: sample(daemon, "ragmon_config_reload_failures_total") == 2, 10,
             "the refusal of the broken golden set")
    assert any("golden.jsonl" in r.getMessage() for r in caplog.records)
    kubelet_write(volume, files({"a": sleeper("1h")}), "2026_12_01_10_04_00.5")
    wait_for(lambda: set(daemon.config.probes) == {"a"}, 10, "the fixed config")
    assert sample(daemon, "ragmon_config_last_reload_successful") == 1


def test_the_old_probes_keep_running_while_a_broken_config_is_refused(
    tmp_path: Path, started: Any,
) -> None:
    port = free_port()
    path = tmp_path / "ragmon.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path, port, {"a": sleeper("1s")})))
    daemon = started(path)
    path.write_text("probes: [this is not\n")
    wait_for(lambda: sample(daemon, "ragmon_config_reload_failures_total") == 1, 10,
             "the refusal")
    before = len(runs(daemon, "a"))
    wait_for(lambda: len(runs(daemon, "a")) >= before + 2, 20, "runs on the old config")
    assert {r.status for r in runs(daemon, "a")} == {"ok"}
    assert daemon.healthz() == (True, "ok")


def test_a_reload_during_a_run_lets_the_run_finish_on_its_config(
    tmp_path: Path, started: Any,
) -> None:
    port = free_port()
    path = tmp_path / "ragmon.yaml"
    path.write_text(yaml.safe_dump(config_dict(
        tmp_path, port, {"slow": sleeper("1h", seconds=2.0)})))
    daemon = started(path)
    wait_for(lambda: daemon.runner.live_threads(), 10, "the first run to start")
    reloaded_at = datetime.now(UTC)  # the watcher may apply the file before reload() does
    path.write_text(yaml.safe_dump(config_dict(
        tmp_path, port, {"slow": sleeper("1s", seconds=0.0)})))
    assert daemon.reloader is not None and daemon.reloader.reload("test")
    assert daemon.store is not None
    store = daemon.store

    def by_value() -> dict[float, list[Any]]:
        found: dict[float, list[Any]] = {}
        for run in runs(daemon, "slow"):
            for value in store.run_values(run.id):
                found.setdefault(value.value, []).append(run)
        return found

    wait_for(lambda: 2.0 in by_value() and 0.0 in by_value(), 20,
             "the run in flight and one on the new config")
    [old] = by_value()[2.0]
    assert old.status == "ok" and old.started_at < reloaded_at < old.finished_at
    assert all(r.started_at > reloaded_at for r in by_value()[0.0])


def test_restart_only_settings_keep_their_value_and_a_model_stays_loaded(
    tmp_path: Path, started: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    path = tmp_path / "ragmon.yaml"
    embedders = {"minilm": {"kind": "sentence-transformers", "model": "all-MiniLM-L6-v2"},
                 "other": {"kind": "sentence-transformers", "model": "all-MiniLM-L6-v2"}}
    path.write_text(yaml.safe_dump(config_dict(
        tmp_path, port, {"a": sleeper("1h")}, embedders=embedders)))
    daemon = started(path)
    kept, replaced = daemon.context.embedder("minilm"), daemon.context.embedder("other")
    changed = config_dict(tmp_path, free_port(), {"a": sleeper("1h")}, embedders={
        **embedders, "other": {**embedders["other"], "batch_size": 8}})
    changed["store"]["url"] = "postgresql://ragmon:hunter2-secret@127.0.0.1:1/rag"
    changed["logging"] = {"level": "debug"}
    path.write_text(yaml.safe_dump(changed))
    caplog.set_level(logging.WARNING, logger="ragmon.reload")
    root_level = logging.getLogger().level
    assert daemon.reloader is not None and daemon.reloader.reload("test")
    assert daemon.config.server.listen == f"127.0.0.1:{port}"
    assert "ragmon.db" in daemon.config.store.url.get_secret_value()
    assert logging.getLogger().level == logging.DEBUG
    logging.getLogger().setLevel(root_level)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "server changed; it needs a restart" in text
    assert "store changed; it needs a restart" in text
    assert "hunter2-secret" not in text
    assert daemon.context.embedder("minilm") is kept
    assert daemon.context.embedder("other") is not replaced
    assert daemon.context.embedder("other").config.batch_size == 8  # type: ignore[attr-defined]
    assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200


def test_sighup_reloads_a_running_process_and_sigterm_during_a_reload_exits_0(
    tmp_path: Path,
) -> None:
    port = free_port()
    path = tmp_path / "ragmon.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path, port, {}, reload={"watch": False})))
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(ragmon_cmd("run", "-c", str(path)), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: get(base + "/healthz")[0] == 200, 60, "/healthz")
        # A probe that runs without a model: its index file is not there, a failed run.
        drift = {"kind": "drift", "source": "index", "target": "idx", "every": "1h"}
        path.write_text(yaml.safe_dump(config_dict(
            tmp_path, port, {"drift": drift}, reload={"watch": False},
            targets={"idx": {"kind": "faiss", "path": str(tmp_path / "missing.faiss")}})))
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: 'ragmon_probe_interval_seconds{kind="drift",probe="drift",'
                 'target="idx"} 3600.0' in get(base + "/metrics")[1], 20, "the added probe")
        wait_for(lambda: 'ragmon_probe_success{kind="drift",probe="drift",target="idx"} 0.0'
                 in get(base + "/metrics")[1], 20, "its first run")
        assert "ragmon_config_reload_total 1.0" in get(base + "/metrics")[1]
        proc.send_signal(signal.SIGHUP)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate(timeout=20)[0]
    assert "config reloaded: 1 probes" in output
    assert "Traceback" not in output, output


def test_alert_rules_follow_a_reload(tmp_path: Path, started: Any) -> None:
    """No alerts at start, a rule added (the extension is installed then), then replaced by
    another (the installed runtime reloads): each new rule fires on the failing probe."""
    port = free_port()
    path = tmp_path / "ragmon.yaml"
    probes = {"bad": sleeper("1s", fail=True)}
    path.write_text(yaml.safe_dump(config_dict(tmp_path, port, probes)))
    daemon = started(path)
    assert daemon.reloader is not None

    def rule(name: str) -> dict[str, Any]:
        return {"rules": {name: {"probe": "bad", "field": "status", "condition": "!= ok"}}}

    def firing(name: str) -> float | None:
        return sample(daemon, "ragmon_alerts_firing", rule=name, severity="warning")

    for name in ("FirstRule", "SecondRule"):
        path.write_text(yaml.safe_dump(config_dict(tmp_path, port, probes, alerts=rule(name))))
        assert daemon.reloader.reload("test")
        wait_for(lambda name=name: firing(name) == 1, 20, f"{name} to fire")
    status, body = get(f"http://127.0.0.1:{port}/alerts?rule=SecondRule")
    assert status == 200 and "SecondRule" in body
    assert daemon.context.after_run and len(daemon.context.after_run) == 1


def test_the_ingest_endpoint_follows_a_reload(tmp_path: Path, started: Any) -> None:
    """Drift ingest returns nothing when installed: a reload installs it again, so a query
    drift probe added by a reload accepts traffic and a removed one no longer does."""
    import json
    import urllib.error
    import urllib.request

    port = free_port()
    path = tmp_path / "ragmon.yaml"
    embedders = {"e": {"kind": "sentence-transformers", "model": "all-MiniLM-L6-v2"}}
    drift = {"kind": "drift", "source": "queries", "embedder": "e", "every": "1h"}

    def post(probe: str) -> int:
        body = json.dumps({"vectors": [[0.1, 0.2, 0.3]]}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/ingest/{probe}", data=body, method="POST",
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    path.write_text(yaml.safe_dump(config_dict(
        tmp_path, port, {"old": drift}, embedders=embedders)))
    daemon = started(path)
    assert post("old") == 200 and post("new") == 404
    path.write_text(yaml.safe_dump(config_dict(
        tmp_path, port, {"new": drift}, embedders=embedders)))
    assert daemon.reloader is not None and daemon.reloader.reload("test")
    assert post("new") == 200 and post("old") == 404


def test_an_extension_installed_again_leaves_one_of_each_part(
    tmp_path: Path, started: Any, promtool: str,
) -> None:
    """The weekly report returns nothing when installed, so each reload installs it again:
    its collector, jobs and page must be replaced, not doubled (the exposition still passes
    `promtool check metrics`), and a reload that turns it off removes them."""
    port = free_port()
    path = tmp_path / "ragmon.yaml"
    report = {"enabled": True, "from": "ragmon@example.org", "to": ["team@example.org"],
              "smtp": {"host": "127.0.0.1", "port": free_port(), "security": "none"},
              "endpoint": {"enabled": True, "token": "report-token"}}
    path.write_text(yaml.safe_dump(config_dict(tmp_path, port, {"a": sleeper("1h")},
                                               report=report)))
    daemon = started(path)
    assert daemon.reloader is not None
    for every in ("2h", "3h"):
        path.write_text(yaml.safe_dump(config_dict(tmp_path, port, {"a": sleeper(every)},
                                                   report=report)))
        assert daemon.reloader.reload("test")
    body = get(f"http://127.0.0.1:{port}/metrics")[1]
    check = subprocess.run([promtool, "check", "metrics"], input=body, text=True,
                           capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert body.count("# TYPE ragmon_report_last_success_timestamp_seconds ") <= 1
    assert get(f"http://127.0.0.1:{port}/report")[0] != 404
    path.write_text(yaml.safe_dump(config_dict(tmp_path, port, {"a": sleeper("3h")})))
    assert daemon.reloader.reload("test")
    assert daemon.scheduler is not None
    assert not [j.id for j in daemon.scheduler.get_jobs() if j.id.startswith("report:")]
    assert get(f"http://127.0.0.1:{port}/report")[0] == 404
    assert "ragmon_report_" not in get(f"http://127.0.0.1:{port}/metrics")[1]


def test_a_replaced_target_is_closed_only_after_the_runs_in_flight(
    tmp_path: Path, started: Any,
) -> None:
    """A target whose entry changed is built again for new runs; the old one (a loaded FAISS
    index here) is closed once the runs that were going at the reload have ended."""
    import faiss
    import numpy as np

    index = faiss.IndexFlatIP(4)
    index.add(np.random.default_rng(0).random((10, 4), dtype=np.float32))
    faiss.write_index(index, str(tmp_path / "index.faiss"))
    port = free_port()
    path = tmp_path / "ragmon.yaml"

    def write(seconds: float, timeout: str) -> None:
        path.write_text(yaml.safe_dump(config_dict(
            tmp_path, port, {"slow": sleeper("1h", seconds=seconds)},
            targets={"t": {"kind": "faiss", "path": "index.faiss", "timeout": timeout}})))

    write(2.0, "30s")
    daemon = started(path)
    old = daemon.context.target("t")
    assert old.count() == 10 and old._loaded is not None  # type: ignore[attr-defined]
    wait_for(lambda: daemon.runner.live_threads(), 10, "the first run to start")
    write(0.0, "20s")
    assert daemon.reloader is not None and daemon.reloader.reload("test")
    assert daemon.context.target("t") is not old
    time.sleep(0.5)
    assert old._loaded is not None  # type: ignore[attr-defined]  # the run still goes
    wait_for(lambda: runs(daemon, "slow"), 10, "the run in flight to be stored")
    wait_for(lambda: old._loaded is None, 5, "the replaced target to be closed")  # type: ignore[attr-defined]


def test_a_rotated_secret_file_is_a_reload_and_never_logged(
    tmp_path: Path, started: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "db-url").write_text("postgresql://ragmon:first-secret@127.0.0.1:1/rag")
    path = tmp_path / "ragmon.yaml"
    path.write_text(yaml.safe_dump(config_dict(
        tmp_path, port, {}, targets={"db": {"kind": "pgvector", "table": "chunks",
                                           "url": {"file": "secrets/db-url"}}})))
    daemon = started(path)
    caplog.set_level(logging.DEBUG, logger="ragmon")
    (secrets / "db-url").write_text("postgresql://ragmon:second-secret@127.0.0.1:1/rag")
    wait_for(lambda: "second-secret" in daemon.config.targets["db"]  # type: ignore[attr-defined]
             .url.get_secret_value(), 10, "the reload")
    assert sample(daemon, "ragmon_config_reload_total") == 1
    assert "secrets/db-url" in caplog.text
    assert "second-secret" not in caplog.text and "first-secret" not in caplog.text


def test_a_file_caught_half_written_is_not_applied(tmp_path: Path, started: Any) -> None:
    """Written in place, a file is empty for a moment, which is a valid config without any
    probe: the watcher applies a file only once it reads the same twice in a row."""
    port = free_port()
    path = tmp_path / "ragmon.yaml"
    text = yaml.safe_dump(config_dict(tmp_path, port, {"a": sleeper("1h")}))
    path.write_text(text)
    daemon = started(path)
    for _ in range(3):
        path.write_text("")
        time.sleep(0.15)  # shorter than the settling time at this poll (0.2 s)
        path.write_text(text.replace("1h", "2h"))
        wait_for(lambda: daemon.config.probes["a"].every == 7200, 10, "the whole file")
        path.write_text("")
        time.sleep(0.15)
        path.write_text(text)
        wait_for(lambda: daemon.config.probes["a"].every == 3600, 10, "the whole file")
    assert sample(daemon, "ragmon_config_reload_total") == 6
