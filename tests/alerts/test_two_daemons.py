"""Two real `ragmon run` daemons share one PostgreSQL store: each notification is delivered once.

Both daemons run the canary on the same schedule and evaluate the same rules after every run
(their own and, through the shared store, each other's history); the webhook receiver is a
real HTTP server on 127.0.0.1. Each notification is claimed in the database before it is
sent, so exactly one copy arrives however the runs interleave.

The rules re-notify every second while firing, so every run queues new notifications and
the daemons race again and again. Each daemon says who it is twice: its ``external_url``
is in the generatorURL of what it queued, a header of its webhook sink on what it
delivered. The test waits until both daemons have queued and delivered notifications and
one daemon has delivered a notification the other queued (it won a claim from under the
queuer's own delivery), then checks that nothing arrived twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from sqlalchemy import select

from ragmon.alerts.tables import AlertNotification
from ragmon.monitor.store import Store

from ..conftest import free_port
from .alert_support import Receiver

RULES = 8
NAMES = ("replica-a", "replica-b")
REPLICA_HEADER = "X-Test-Replica"


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
            "external_url": f"http://{name}.test",  # in the generatorURL of what it queues
            "sinks": {"hook": {"kind": "webhook", "url": hook,
                               "headers": {REPLICA_HEADER: name}}},  # on what it delivers
            "rules": {f"CanaryDimension{i}": {
                "probe": "canary", "field": "canary_dimension", "condition": "== 384",
                "severity": "info", "summary": "canary dimension is {{ value }}",
                "repeat_interval": "1s"}
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
            [sys.executable, "-m", "ragmon.monitor", "run", "-c",
             str(daemon_config(tmp_path, name, postgres_url, receiver.url))],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for name in NAMES
    ]
    store = Store(postgres_url)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            seen = _who(receiver)
            if _competed(seen):
                break
            assert all(p.poll() is None for p in procs), "a daemon exited early"
            time.sleep(0.5)
        else:
            raise AssertionError(f"the daemons did not both queue, deliver and win a claim "
                                 f"from each other in time: {Counter(seen)}")
        time.sleep(3)  # time for a duplicate to arrive, if the claim were broken
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        assert [p.wait(timeout=30) for p in procs] == [0, 0]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    outputs = [p.communicate()[0] for p in procs]  # reads the rest and closes the pipe
    assert all("Traceback" not in o for o in outputs), outputs
    bodies = [r.json() for r in receiver.ok_requests]
    assert {b["status"] for b in bodies} == {"firing"}
    assert {b["alert"]["annotations"]["summary"] for b in bodies} == {"canary dimension is 384.0"}
    # A notification is one rule's notice after one run: nothing arrived twice ...
    received = Counter((b["alert"]["name"], b["run"]["id"]) for b in bodies)
    assert max(received.values()) == 1, [k for k, n in received.items() if n > 1]
    assert {name for name, _ in received} == {f"CanaryDimension{i}" for i in range(RULES)}
    # ... and what arrived is what the outbox says was sent (the daemons were stopped while
    # still notifying, so the last few may be unsent, or sent but not yet marked).
    with store.session() as s:
        rows = s.execute(select(AlertNotification.rule, AlertNotification.payload,
                                AlertNotification.status)).all()
    store.close()
    queued = {(rule, payload["run_id"]): status for rule, payload, status in rows}
    assert len(queued) == len(rows)
    assert set(received) <= set(queued)
    assert {k for k, status in queued.items() if status == "sent"} <= set(received)


def _who(receiver: Receiver) -> list[tuple[str, str]]:
    """(queued by, delivered by) of every notification received so far."""
    return [((urlsplit(r.json()["alert"]["generatorURL"]).hostname or "?").removesuffix(".test"),
             r.headers.get(REPLICA_HEADER.lower(), "?")) for r in receiver.ok_requests]


def _competed(seen: list[tuple[str, str]]) -> bool:
    queuers, senders = {q for q, _ in seen}, {d for _, d in seen}
    return queuers == senders == set(NAMES) and any(q != d for q, d in seen)
