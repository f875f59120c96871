"""Exactly once across replicas: two processes share one real PostgreSQL store, evaluate the
same transitions at the same moment and both deliver; every notification arrives once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from alert_support import T0, Receiver, minutes
from ragmon.monitor.store import Store
from ragmon.monitor.store.tables_alerts import AlertNotification
from sqlalchemy import func, select

SCRIPT = Path(__file__).resolve().parent / "replica_process.py"
REPO = Path(__file__).resolve().parents[2]
N_RULES = 8


def run_replicas(url: str, config: dict, recall: float, finished_at: str) -> list[dict]:
    start = time.time() + 4.0  # both processes are imported and waiting by then
    procs = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), url, json.dumps(config), str(start), str(recall),
             finished_at],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(2)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_two_replicas_one_notification_each(postgres_url: str, receiver: Receiver) -> None:
    store = Store(postgres_url)
    store.migrate()
    rule = {"probe": "docs-recall", "field": "recall_ratio", "match": {"k": 10, "mode": "live"},
            "condition": "< 0.8"}
    config = {"sinks": {"hook": {"kind": "webhook", "url": receiver.url}},
              "delivery": {"poll": "50ms", "timeout": "5s"},
              "rules": {f"RecallLow{i}": rule for i in range(N_RULES)}}

    firing = run_replicas(postgres_url, config, 0.5, T0.isoformat())
    assert sum(r["queued"] for r in firing) == N_RULES
    assert sum(r["claimed"] for r in firing) == N_RULES
    resolved = run_replicas(postgres_url, config, 0.9, (T0 + minutes(5)).isoformat())
    assert sum(r["queued"] for r in resolved) == N_RULES

    received = Counter((b["alert"]["name"], b["status"])
                       for b in (r.json() for r in receiver.ok_requests))
    assert received == Counter({(f"RecallLow{i}", status): 1 for i in range(N_RULES)
                                for status in ("firing", "resolved")})
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(AlertNotification)) == 2 * N_RULES
    store.close()
