"""``ragmon demo``: ragmon catching rot on its embedded default, with nothing to install.

Steps: build or load the index (SQLite, a FAISS file, the bundled MiniLM, in a data folder);
capture baselines (the canary's vectors, the recall baseline, a reference of query traffic);
run the probes healthy and say what the numbers mean; inject each kind of rot in turn
(:mod:`monitor.demo.rot`), run the probes after each and revert it; print what ragmon saw,
its verdict, the alert that fired and the time to detect (:mod:`monitor.demo.table`); write
the report of the demo period; then start the daemon itself and read its /metrics. With
``--serve`` the daemon keeps running until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ragmon.monitor.demo import rot, scenario, table
from ragmon.monitor.demo.checks import DemoError, preflight
from ragmon.monitor.demo.flow import Flow
from ragmon.monitor.http import free_port, http_get

if TYPE_CHECKING:
    from ragmon.monitor.daemon import Daemon
    from ragmon.monitor.plugins import Plugins


def write_config(data_dir: Path, port: int | None, out: Any, plugins: Plugins) -> Path:
    """The demo's config with its files prepared (for tests and benchmarks that run the
    daemon on the demo set-up): written once, with ``port`` in a new file."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path, _ = scenario.write_config(data_dir, plugins, port)
    scenario.prepare(data_dir, out)
    return path


HEADLINE = ("ragmon_probe_success", "ragmon_canary_cosine_min", "ragmon_canary_changed",
            "ragmon_recall_ratio", "ragmon_index_fidelity_ratio", "ragmon_recall_verdict",
            "ragmon_drift_alarm", "ragmon_coverage_gap_ratio", "ragmon_alerts_firing")


def _headline(sample: str) -> bool:
    """The samples worth showing a person: outcomes, not bookkeeping (k=10 only)."""
    name = sample.split("{")[0].split(" ")[0]
    if name not in HEADLINE or ('k="' in sample and 'k="10"' not in sample):
        return False
    return not (name == "ragmon_recall_verdict" and sample.endswith(" 0.0"))


def run_demo(data_dir: str | Path, plugins: Plugins, serve: bool = False, out: Any = None,
             only: list[str] | None = None, err: Any = None) -> int:
    """The demo in ``data_dir``; ``only`` limits the scenarios (by key). Returns the exit code:
    0 when every scenario was detected as expected, 1 when one was not, 2 for bad input."""
    from ragmon.monitor.store import Store

    out, err = out or sys.stdout, err or sys.stderr
    data = Path(data_dir).resolve()
    try:
        preflight(data, plugins)
    except DemoError as exc:
        print(f"ragmon demo: {exc}", file=err)
        return 2
    if rot.recover(data):
        print("ragmon demo: restored the healthy index an interrupted demo left changed", file=out)
    path, written = scenario.write_config(data, plugins)
    print(f"ragmon demo: {'wrote' if written else 'using'} config {path}"
          + ("" if written else " (your edits are kept)"), file=out)
    port = free_port()
    environ = {**os.environ, "RAGMON_SERVER__LISTEN": f"127.0.0.1:{port}"}
    try:
        scenario.prepare(data, out)
    except KeyboardInterrupt:  # every file is written under a temporary name, then renamed
        print("\nragmon demo: interrupted while preparing; run it again to continue", file=out)
        return 130
    from ragmon.monitor.config import load_config

    config = load_config(path, plugins, environ)
    store = Store(config.store.url.get_secret_value())
    store.migrate()
    flow = Flow(data, path, plugins, environ, store, out)
    started = datetime.now(UTC)
    try:
        outcomes = flow.run(rot.scenarios(only))
        table.render(outcomes, out)
        report = write_report(path, plugins, started, data, err)
        if report is not None:
            print(f"\nragmon demo: the report of this demo period is {report}", file=out)
        daemon_check(flow, port, serve, out)
    except KeyboardInterrupt:
        flow.revert(check=False)
        print("\nragmon demo: interrupted; the index is restored, run it again to continue",
              file=out, flush=True)
        if not flow.session.stop(grace=5.0):
            store.close()
        # Finalising the interpreter after an interrupted run aborts the process inside
        # torch's or FAISS's native threads: leave without it, as the daemon does (nothing of
        # an unfinished run is stored; a run is one transaction, the files were renamed).
        _exit_now(130)
    except Exception:
        flow.revert(check=False)  # the deployment is left healthy, whatever failed
        flow.close()
        store.close()
        raise
    flow.close()
    store.close()
    missed = [o.rot.title for o in outcomes if not o.as_expected]
    print(f"\nragmon demo: {len(outcomes) - len(missed)} of {len(outcomes)} scenarios "
          f"detected as expected{'; not: ' + ', '.join(missed) if missed else ''}; history in "
          f"{data / 'ragmon.db'}", file=out)
    return 1 if missed else 0


def _exit_now(code: int) -> NoReturn:
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def write_report(config_path: Path, plugins: Plugins, since: datetime, data: Path,
                 err: Any) -> Path | None:
    """The weekly report of the demo's period, as one self-contained HTML file, written by
    the report command (`ragmon report --out`); None when it could not be written."""
    from ragmon.monitor import cli

    fmt = "%Y-%m-%dT%H:%M:%SZ"
    until = datetime.now(UTC) + timedelta(minutes=1)
    path, tmp = data / "report.html", data / ".report.html.tmp"
    argv = ["report", "-c", str(config_path), "--since",
            (since - timedelta(minutes=1)).strftime(fmt), "--until", until.strftime(fmt),
            "--out", str(tmp)]
    errors = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(errors):
        code = cli.main(argv, plugins)
    if code != 0 or not tmp.exists():
        print(f"ragmon demo: the report could not be written: {errors.getvalue().strip()}",
              file=err)
        return None
    os.replace(tmp, path)
    return path


def daemon_check(flow: Flow, port: int, serve: bool, out: Any) -> None:
    """The daemon itself on the demo data: /healthz, /readyz and /metrics as Prometheus and a
    kubelet read them; kept running with ``serve`` until Ctrl-C or SIGTERM."""
    from ragmon.monitor.daemon import Daemon

    daemon: Daemon = Daemon(flow.session.config, context=flow.session.for_daemon())
    daemon.start()
    try:
        base = f"http://127.0.0.1:{port}"
        for endpoint in ("/healthz", "/readyz"):
            status, body = http_get(base + endpoint)
            print(f"GET {endpoint} -> {status} {body.strip()}", file=out)
        status, body = http_get(base + "/metrics")
        samples = [line for line in body.splitlines() if line.startswith("ragmon_")]
        print(f"GET /metrics -> {status}, {len(samples)} ragmon samples, among them:", file=out)
        for line in samples:
            if _headline(line):
                print("  " + line, file=out)
        if serve:
            print(f"\nserving /metrics on {base}/metrics (Ctrl-C to stop)", file=out,
                  flush=True)
            signal.signal(signal.SIGTERM, lambda *_: daemon.stop_event.set())
            while not daemon.stop_event.wait(1.0):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        daemon.shutdown()
