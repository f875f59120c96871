"""SIGTERM at any moment exits 0 and stores no partial run.

Found in a real trial: SIGTERM while a 3,120-query recall run was embedding or searching
ended in ``terminate called without an active exception`` and SIGABRT (exit 134), because
the interpreter finalised while a probe thread was still inside torch or FAISS. Kubernetes
counts that as a crash. Here real ``ragmon run`` daemons (recall probe on the demo's FAISS
index, the bundled model, a webhook alert that fires on every run) are stopped at random
moments: during model load, embedding, search, storing and alert delivery, on SQLite and on
PostgreSQL.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from ragmon.monitor.demo import scenario
from ragmon.monitor.store import Store
from ragmon.monitor.store.models import ProbeRun, QueryResult

GOLDEN_SIZE = 312  # the demo's questions, repeated: a recall run embeds and searches 312
TRIALS_PER_BACKEND = 16


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, minilm: Any) -> Path:
    """The demo's FAISS index of real MiniLM vectors and a large golden set."""
    path = tmp_path_factory.mktemp("shutdown")
    scenario.build_index(path, io.StringIO())
    questions = [json.loads(line) for line in
                 (files("ragmon.monitor.demo") / "golden.jsonl").read_text().splitlines()
                 if line.strip()]
    with open(path / "golden.jsonl", "w") as fh:
        for i in range(GOLDEN_SIZE):
            q = questions[i % len(questions)]
            fh.write(json.dumps({**q, "id": f"{q['id']}-{i // len(questions)}"}) + "\n")
    return path


def config(workdir: Path, store_url: str, hook_port: int) -> Path:
    cfg = {
        "store": {"url": store_url},
        "server": {"listen": "127.0.0.1:0", "shutdown_grace": "1s"},
        "logging": {"level": "info"},
        "embedders": {"minilm": {"kind": "sentence-transformers"}},
        "targets": {"docs": {"kind": "faiss", "path": str(workdir / "index.faiss"),
                             "ids_path": str(workdir / "index.ids"), "metric": "cosine",
                             "embedder": "minilm"}},
        "golden_sets": {"questions": {"path": str(workdir / "golden.jsonl")}},
        "probes": {"docs-recall": {"kind": "recall", "target": "docs",
                                   "golden_set": "questions", "documents": {"separator": "#"},
                                   "every": "2s", "jitter": "0s",
                                   "timeout": "2m"}},
        "alerts": {
            "delivery": {"poll": "200ms", "backoff": "200ms", "timeout": "2s"},
            "sinks": {"hook": {"kind": "webhook", "url": f"http://127.0.0.1:{hook_port}/"}},
            # fires on every run, so shutdowns also land during alert delivery
            "rules": {"AlwaysOn": {"probe": "docs-recall", "field": "recall_ratio",
                                   "match": {"k": 10, "mode": "live"}, "condition": "< 2"}},
        },
    }
    path = workdir / f"ragmon-{uuid.uuid4().hex[:8]}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def one_trial(cfg: Path, delay: float, env: dict[str, str], after_run: bool = False,
              ) -> dict[str, Any]:
    """Start a daemon and stop it ``delay`` seconds after it could first honour SIGTERM, or,
    with ``after_run``, ``delay`` seconds after its first probe run finished (so later runs
    and alert delivery are hit however slow the machine is)."""
    proc = subprocess.Popen([sys.executable, "-m", "ragmon.monitor", "run", "-c", str(cfg)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    first_run = threading.Event()

    def read(stream: io.TextIOBase) -> None:
        for line in stream:
            lines.append(line)
            if "probe run finished" in line:
                first_run.set()

    reader = threading.Thread(target=read, args=(proc.stdout,), daemon=True)
    reader.start()
    start = time.monotonic()
    wait_for_sigterm_handler(proc.pid)
    if after_run:
        assert first_run.wait(240), "no probe run finished in 240 s: " + "".join(lines)[-600:]
        time.sleep(delay)
    else:
        time.sleep(max(0.0, delay - (time.monotonic() - start)))
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        reader.join(10)
        proc.stdout.close()
        return {"delay": delay, "code": "hung", "output": "".join(lines)}
    reader.join(10)
    proc.stdout.close()
    output = "".join(lines)
    return {"delay": delay, "code": proc.returncode, "output": output,
            "runs_before_signal": output.split("received SIGTERM")[0].count(
                "probe run finished")}


def wait_for_sigterm_handler(pid: int, limit: float = 30.0) -> None:
    """Until the process catches SIGTERM (its bit in /proc's SigCgt mask). Before that the
    interpreter is still starting (no Python code has run, nothing can be handled or stored);
    the console script installs its handler first thing, so on a loaded machine the delays
    count from the moment a daemon could first honour the signal."""
    bit = 1 << (signal.SIGTERM - 1)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return  # exited already: the trial reports its code
        caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
        if int(caught.split()[1], 16) & bit:
            return
        time.sleep(0.01)
    raise AssertionError(f"the daemon (pid {pid}) installed no SIGTERM handler in {limit}s")


def whole_runs_only(store_url: str, golden_size: int) -> list[str]:
    """Problems with what is stored: a run is whole (every query row) or absent."""
    store = Store(store_url)
    problems = []
    try:
        if store.revision() is None:
            return []  # stopped before it had migrated: nothing stored at all
        with store.session() as s:
            for run in s.scalars(select(ProbeRun)):
                rows = s.scalar(select(func.count()).select_from(QueryResult)
                                .where(QueryResult.run_id == run.id))
                if run.status == "ok" and rows != golden_size:
                    problems.append(f"run {run.id}: {rows} of {golden_size} query rows")
                if run.error and "shutdown" in run.error:
                    problems.append(f"run {run.id} stored although interrupted: {run.error}")
    finally:
        store.close()
    return problems


@contextmanager
def slow_receiver() -> Iterator[int]:
    """A real webhook receiver on 127.0.0.1 that takes half a second per notification."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(0.5)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigterm_at_random_moments_exits_0_and_stores_no_partial_run(
    backend: str, workdir: Path, request: pytest.FixtureRequest, tmp_path: Path,
) -> None:
    rng = random.Random(f"shutdown-{backend}")
    # Half the daemons are stopped at a random moment of start-up and the first run (model
    # load, embedding, search, storing), half a little after a first run finished (later
    # runs, one every 2s, and alert delivery), whatever the machine's speed.
    after = [i % 2 == 1 for i in range(TRIALS_PER_BACKEND)]
    delays = [round(rng.uniform(0.0, 4.0) if a else rng.uniform(0.3, 12.0), 2)
              for a in after]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with slow_receiver() as port:
        urls = [f"sqlite:///{tmp_path / f'ragmon-{i}.db'}" for i in range(len(delays))]
        if backend == "postgresql":
            new_database = request.getfixturevalue("new_postgres_database")
            urls = [new_database() for _ in delays]
        cfgs = [config(workdir, url, port) for url in urls]
        with ThreadPoolExecutor(max_workers=2) as pool:  # two daemons at a time
            trials = list(pool.map(one_trial, cfgs, delays, [env] * len(delays), after))
    codes = [t["code"] for t in trials]
    assert codes == [0] * len(trials), [
        (t["delay"], t["code"], t["output"][-600:]) for t in trials if t["code"] != 0]
    assert all("Traceback" not in t["output"] for t in trials)
    # the signals landed both before any run had finished (model load, embedding, search)
    # and after (later runs, alert delivery)
    before = sum(t["runs_before_signal"] == 0 for t in trials)
    assert 0 < before < len(trials), [t["runs_before_signal"] for t in trials]
    golden_size = GOLDEN_SIZE
    problems = [p for url in urls for p in whole_runs_only(url, golden_size)]
    assert problems == []
    for cfg in cfgs:
        cfg.unlink()
    shutil.rmtree(tmp_path, ignore_errors=True)
