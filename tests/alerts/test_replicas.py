"""Exactly once across replicas: two processes share one real PostgreSQL store, evaluate the
same transitions at the same moment and both deliver; every notification arrives once, and
each replica really took part (the outbox records who claimed what).

The replicas are released together by barriers (not by a wall-clock start time that a slow
machine can miss), and a round is repeated, up to MAX_ROUNDS, until each replica has
claimed something. A second test breaks the claim and sees duplicates, so the exactly-once
assertions can fail.
"""

from __future__ import annotations

import json
import select as io_select
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from alert_support import T0, Receiver, minutes
from sqlalchemy import select

from ragmon.alerts.tables import AlertNotification
from ragmon.monitor.store import Store

SCRIPT = Path(__file__).resolve().parent / "replica_process.py"
REPO = Path(__file__).resolve().parents[2]
N_RULES = 8
REPLICAS = ("replica-a", "replica-b")
# Both replicas claim the same due rows in the same order, so whichever gets ahead tends to
# stay a step ahead and win every claim of that race; which one varies from race to race.
# A round is two races (firing, resolved); 1 to 3 rounds were needed in 11 runs.
MAX_ROUNDS = 8
RULE = {"probe": "docs-recall", "field": "recall_ratio", "match": {"k": 10, "mode": "live"},
        "condition": "< 0.8"}


def config(receiver: Receiver) -> dict[str, Any]:
    return {"sinks": {"hook": {"kind": "webhook", "url": receiver.url}},
            "delivery": {"poll": "50ms", "timeout": "5s"},
            "rules": {f"RecallLow{i}": RULE for i in range(N_RULES)}}


def _line(proc: subprocess.Popen[str], log: Path, timeout: float = 60.0) -> str:
    ready, _, _ = io_select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().strip() if ready else ""  # type: ignore[union-attr]
    assert line, f"replica gave no line in {timeout}s: {log.read_text()[-3000:]}"
    return line


def run_replicas(url: str, cfg: dict[str, Any], recall: float, finished_at: str, logs: Path,
                 *, broken_claim: bool = False) -> list[dict[str, Any]]:
    """Both replicas evaluate one run and deliver what it queued, released together."""
    procs, errs = [], []
    for name in REPLICAS:
        err = logs / f"{name}.stderr"
        cmd = [sys.executable, str(SCRIPT), url, json.dumps(cfg), name, str(recall),
               finished_at, *(["--break-claim"] if broken_claim else [])]
        with open(err, "w") as fh:
            procs.append(subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=fh, text=True))
        errs.append(err)
    try:
        for arrived, release in (("ready", "go"), ("evaluated", "deliver")):
            # A barrier: nobody is released before every replica has arrived.
            assert [_line(p, e) for p, e in zip(procs, errs, strict=True)] == [arrived] * 2
            for proc in procs:
                proc.stdin.write(release + "\n")  # type: ignore[union-attr]
                proc.stdin.flush()  # type: ignore[union-attr]
        results = []
        for proc, err in zip(procs, errs, strict=True):
            out, _ = proc.communicate(timeout=60)
            assert proc.returncode == 0, err.read_text()[-3000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def race(url: str, receiver: Receiver, logs: Path, n: int, *, broken_claim: bool = False
         ) -> list[tuple[str, list[dict[str, Any]], Counter[tuple[str, str]]]]:
    """Round ``n``: every rule fires (both replicas evaluate and deliver), then resolves.
    Per phase: the status, each replica's result, and what the receiver got."""
    at = T0 + minutes(10 * n)
    phases = []
    for status, recall, finished in (("firing", 0.5, at), ("resolved", 0.9, at + minutes(5))):
        before = len(receiver.ok_requests)
        results = run_replicas(url, config(receiver), recall, finished.isoformat(), logs,
                               broken_claim=broken_claim)
        got = Counter((b["alert"]["name"], b["status"])
                      for b in (r.json() for r in receiver.ok_requests[before:]))
        phases.append((status, results, got))
    return phases


def test_two_replicas_one_notification_each(
    postgres_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    store = Store(postgres_url)
    store.migrate()
    claims: Counter[str] = Counter()
    rounds = 0
    while rounds < MAX_ROUNDS and (rounds == 0 or min(claims[r] for r in REPLICAS) == 0):
        for status, results, got in race(postgres_url, receiver, tmp_path, rounds):
            assert [r["replica"] for r in results] == list(REPLICAS)
            assert sum(r["queued"] for r in results) == N_RULES  # one row per transition
            assert sum(r["claimed"] for r in results) == N_RULES  # each claimed once
            # every alert arrives exactly once
            assert got == Counter({(f"RecallLow{i}", status): 1 for i in range(N_RULES)})
            claims.update({r["replica"]: r["claimed"] for r in results})
        rounds += 1
    # Each replica really competed: both claimed notifications, and the outbox agrees with
    # what each replica says it claimed.
    assert all(claims[r] >= 1 for r in REPLICAS), (claims, rounds)
    with store.session() as s:
        rows = s.execute(select(AlertNotification.status, AlertNotification.claimed_by)).all()
    assert len(rows) == 2 * N_RULES * rounds
    assert {status for status, _ in rows} == {"sent"}
    assert Counter(by for _, by in rows) == claims
    store.close()


def test_a_broken_claim_sends_duplicates(
    postgres_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    """The check on the check: the same race with a claim that does not test that the row
    is still due delivers some notifications twice, which the test above would catch."""
    store = Store(postgres_url)
    store.migrate()
    store.close()
    for n in range(MAX_ROUNDS):
        phases = race(postgres_url, receiver, tmp_path, n, broken_claim=True)
        for _, results, _ in phases:
            assert sum(r["queued"] for r in results) == N_RULES  # evaluation still dedups
        if any(count > 1 for _, _, got in phases for count in got.values()):
            return
    raise AssertionError(f"no duplicate in {MAX_ROUNDS} rounds: the replicas never raced")
