"""A real daemon set up like `ragmon demo` (FAISS index of the stdlib docs, the bundled MiniLM,
canary, recall and index-drift probes, SQLite), running in-process, after every demo probe
has run on the schedule and once more (the first runs capture the baseline and references
that later runs compare with). Shared by the tests that read its /metrics."""

from __future__ import annotations

import io
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from ragmon.monitor.app import default_plugins, load_config
from ragmon.monitor.config import RootConfig
from ragmon.monitor.daemon import Daemon
from ragmon.monitor.demo import traffic
from ragmon.monitor.demo.run import write_config

#: Windows a drift probe may still add to its reference pool before it decides.
MAX_FILLING_RUNS = 12


def send_traffic(port: int, probe: str, n: int, seed: int) -> None:
    """``n`` questions of the demo's everyday topic mix, posted to the probe's ingest
    endpoint as the RAG app would."""
    texts = traffic.generate(n, seed=seed)
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/ingest/{probe}", data=json.dumps({"texts": texts}).encode(),
        method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        assert answer.status == 200


@contextmanager
def running_demo_daemon(
    data: Path, port: int, edit: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[tuple[RootConfig, Daemon]]:
    """The demo's config (changed by ``edit`` on the raw YAML, if given) and its running
    daemon, listening on ``port``. Only the demo's own probes must succeed. A drift probe of
    query traffic gets a window of questions before each of its runs, until it compares."""
    path = write_config(data, port, io.StringIO(), default_plugins())
    demo_probes = set(yaml.safe_load(path.read_text())["probes"])
    if edit is not None:
        raw = yaml.safe_load(path.read_text())
        edit(raw)
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
    config = load_config(path, environ={})
    daemon = Daemon(config, CollectorRegistry())
    daemon.start()
    try:
        assert daemon.store is not None and daemon.runner is not None
        deadline = time.monotonic() + 240
        while not all(daemon.store.runs(probe=p, limit=1) for p in config.probes):
            assert time.monotonic() < deadline, "the scheduled first runs did not happen"
            time.sleep(0.5)
        for probe in sorted(demo_probes):  # second runs: they have a baseline or reference now
            pcfg = config.probes[probe]
            queries = getattr(pcfg, "source", None) == "queries"
            for seed in range(MAX_FILLING_RUNS):
                if queries:
                    send_traffic(port, probe, pcfg.window_size, seed)  # type: ignore[attr-defined]
                again, _ = daemon.runner.run(probe)
                assert again.status == "ok", again.error
                # A drift probe compares (and exports its statistics) once it has a reference.
                if again.details.get("verdict") in (None, "compared"):
                    break
        yield config, daemon
    finally:
        daemon.shutdown()
