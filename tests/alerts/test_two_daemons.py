"""Two real `ragmon run` daemons share one PostgreSQL store: each firing alert is delivered once.

Both daemons run the canary on the same schedule and evaluate the same rule after every run
(their own and, through the shared store, each other's history); the webhook receiver is a
real HTTP server on 127.0.0.1. Each notification is claimed in the database before it is
sent, so exactly one firing notification arrives however the runs interleave.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from ragmon.monitor.errors import StoreError
from ragmon.monitor.store import Store

from ..conftest import free_port
from .alert_support import Receiver

RULES = 8


def daemon_config(tmp_path: Path, name: str, store_url: str, hook: str) -> Path:
    cfg: dict[str, Any] = {
        "store": {"url": store_url},
        "server": {"listen": f"127.0.0.1:{free_port()}", "shutdown_grace": "5s"},
        "embedders": {"minilm": {"kind": "sentence-transformers"}},
        "probes": {"canary": {"kind": "canary", "embedder": "minilm", "every": "2s",
                              "jitter": "0s", "timeout": "5m"}},
        "alerts": {
            # Both delivery workers poll the shared outbox continuously, so both see every
            # new notification as due at nearly the same moment: only the claim separates them.
            "delivery": {"poll": "50ms", "backoff": "200ms"},
            "sinks": {"hook": {"kind": "webhook", "url": hook}},
            "rules": {f"CanaryDimension{i}": {
                "probe": "canary", "field": "canary_dimension", "condition": "== 384",
                "severity": "info", "summary": "canary dimension is {{ value }}"}
                for i in range(RULES)},
        },
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_two_daemons_deliver_one_notification(
    tmp_path: Path, postgres_url: str, receiver: Receiver
) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "ragmon.monitor.cli", "run", "-c",
             str(daemon_config(tmp_path, name, postgres_url, receiver.url))],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for name in ("replica-a", "replica-b")
    ]
    store = Store(postgres_url)
    try:
        deadline = time.monotonic() + 240
        # Enough runs from both replicas that each has evaluated the firing rule repeatedly.
        while time.monotonic() < deadline:
            runs = [r for r in _runs(store) if r.status == "ok"]
            if len(runs) >= 4 and len(receiver.ok_requests) >= RULES:
                break
            assert all(p.poll() is None for p in procs), "a daemon exited early"
            time.sleep(0.5)
        else:
            raise AssertionError(
                f"the daemons did not run the canary and notify in time: {len(runs)} runs, "
                f"{len(receiver.ok_requests)} notifications")
        time.sleep(3)  # time for a duplicate to arrive, if the claim were broken
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        assert [p.wait(timeout=30) for p in procs] == [0, 0]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    outputs = [p.stdout.read() for p in procs]  # type: ignore[union-attr]
    assert all("Traceback" not in o for o in outputs), outputs
    firing = [r.json() for r in receiver.ok_requests if r.json()["status"] == "firing"]
    names = sorted(body["alert"]["name"] for body in firing)
    assert names == sorted(f"CanaryDimension{i}" for i in range(RULES))  # each exactly once
    assert {b["alert"]["annotations"]["summary"] for b in firing} == {"canary dimension is 384.0"}


def _runs(store: Store) -> list[Any]:
    try:
        return store.runs(probe="canary", limit=100)
    except StoreError:  # the daemons have not created the schema yet
        return []
