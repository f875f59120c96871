"""A simulated fleet: D `ragmon run` daemons (processes) share one PostgreSQL and one
schedule of P cheap recall probes (a flat FAISS index of 600 random 16-d vectors, a golden
set of 8 vector queries, so a run is milliseconds of work and no model is loaded).

For each D, a new database; the daemons start, and once all answer /readyz the clock runs
for the measured period. Reported per D:

- slots run per second, and the missed-slot rate: slots of the period with no stored run,
  out of P x period / interval (a slot counts when its run was stored);
- duplicate runs (a slot stored twice; must be 0);
- the claim's own time per attempt (every replica tries every slot: D attempts per slot),
  median and p99, interpolated within the buckets of ``ragmon_slot_claim_duration_seconds``
  summed over the daemons;
- a claimed run's delay: stored ``claimed_at`` minus the slot (includes the random wait
  before a claim, up to 0.5 s), median and p99;
- PostgreSQL connections used: the most backends of the database seen at once
  (``pg_stat_activity``, sampled every 0.5 s);
- the share of runs per daemon (min and max).

    .venv/bin/python bench/fleet.py                      # 200 probes, 10 s, 120 s, D = 1 2 5 10
    .venv/bin/python bench/fleet.py --probes 100 --seconds 90
    .venv/bin/python bench/fleet.py --probes 200 --seconds 60 --daemons 1 2 5 --out fleet_200.txt

Writes bench/results/fleet.txt (or --out: a Markdown table and the settings), with the
load average before and after. Not part of the tests.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from ragmon.monitor.http import http_get  # noqa: E402
from ragmon.monitor.slots import probe_trigger  # noqa: E402
from ragmon.monitor.store import Store  # noqa: E402
from ragmon.monitor.store.models import ProbeSlot  # noqa: E402
from tests.conftest import create_database  # noqa: E402
from tests.faults.fleet_support import (  # noqa: E402
    Replica,
    fleet_config,
    recall_probe,
    start,
    stop,
    stored_runs,
    vector_index,
    wait_ready,
)


def claim_buckets(replicas: list[Replica]) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of the claim-time histogram, summed over daemons."""
    total: Counter[float] = Counter()
    for r in replicas:
        status, body = http_get(f"http://127.0.0.1:{r.port}/metrics")
        assert status == 200, body
        for family in text_string_to_metric_families(body):
            for s in family.samples:
                if s.name == "ragmon_slot_claim_duration_seconds_bucket":
                    total[float(s.labels["le"])] += s.value
    return sorted(total.items())


def quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """The q-quantile, linear within the bucket it falls in (as PromQL's
    histogram_quantile)."""
    count = buckets[-1][1]
    rank, low, below = q * count, 0.0, 0.0
    for upper, cumulative in buckets:
        if cumulative >= rank:
            if upper == float("inf"):
                return low
            inside = cumulative - below
            return low + (upper - low) * ((rank - below) / inside if inside else 0.0)
        low, below = upper, cumulative
    return low


def slots_between(name: str, interval: float, since: datetime, until: datetime) -> int:
    """How many slots of probe ``name`` fall in [since, until)."""
    trigger = probe_trigger(recall_config(interval), name)
    first = trigger.get_next_fire_time(None, since)
    assert first is not None
    return max(0, math.ceil((until - first).total_seconds() / interval - 1e-9))


def recall_config(interval: float) -> Any:
    from ragmon.monitor.config import ProbeConfig

    return ProbeConfig.model_construct(every=interval, cron=None)


CLAIM_SQL = """\\set n random(1, 1000000000)
INSERT INTO probe_slots (probe, instance, slot, claimed_by, claimed_at, lease_until, attempts)
VALUES ('p' || (:n % 1000), '', now() + (:n || ' seconds')::interval, 'bench', now(),
        now() + interval '40 seconds', 1)
ON CONFLICT (probe, instance, slot) DO NOTHING;
"""


def claim_rate(server: Any, clients: int = 4, seconds: int = 15) -> float:
    """Claims per second PostgreSQL alone commits (pgbench, ``clients`` connections): the
    claim statement as ragmon sends it, one per transaction, on a migrated database."""
    import subprocess

    from pgserver._commands import POSTGRES_BIN_PATH

    url, drop = create_database(server.get_uri())
    store = Store(url)
    store.migrate()
    store.close()
    script = Path(tempfile.mkdtemp()) / "claim.sql"
    script.write_text(CLAIM_SQL)
    uri = url.replace("postgresql+psycopg://", "postgresql://")
    out = subprocess.run([str(POSTGRES_BIN_PATH / "pgbench"), "-n", "-c", str(clients),
                          "-j", "2", "-T", str(seconds), "-f", str(script), uri],
                         capture_output=True, text=True, check=True).stdout
    drop()
    line = next(ln for ln in out.splitlines() if ln.startswith("tps"))
    return float(line.split("=")[1].split()[0])


def connections(admin: str, database: str) -> int:
    with psycopg.connect(admin, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                           (database,)).fetchone()
    return int(row[0]) if row else 0


def measure(server: str, folder: Path, daemons: int, probes: int, interval: float,
            seconds: float) -> dict[str, Any]:
    url, drop = create_database(server)
    database = url.rsplit("/", 1)[1].split("?")[0]
    admin = server.replace("postgresql+psycopg://", "postgresql://")
    config = {f"p{i:03d}": recall_probe(every=f"{interval:g}s", timeout="30s")
              for i in range(probes)}
    replicas: list[Replica] = []
    try:
        for d in range(daemons):
            path, port = fleet_config(folder, url, f"d{d}", config,
                                      scheduler={"max_workers": 8})
            replicas.append(start(path, f"d{d}", port))
        wait_ready(replicas, timeout=600)
        begun = datetime.now(UTC)
        peak, deadline = 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            peak = max(peak, connections(admin, database))
            time.sleep(0.5)
        ended = datetime.now(UTC)
        buckets = claim_buckets(replicas)
    finally:
        stop(replicas)
    since, until = begun + timedelta(seconds=interval), ended - timedelta(seconds=interval)
    runs = [r for r in stored_runs(url) if since <= r.slot < until]
    store = Store(url)
    with store.session() as s:
        delays = sorted((c - sl).total_seconds() for c, sl in s.execute(
            select(ProbeSlot.claimed_at, ProbeSlot.slot).where(
                ProbeSlot.slot >= since, ProbeSlot.slot < until)).all())
    store.close()
    drop()
    span = (until - since).total_seconds()
    expected = sum(slots_between(name, interval, since, until) for name in config)
    per_slot = Counter((r.probe, r.slot) for r in runs)
    shares = Counter(r.replica for r in runs)
    return {
        "daemons": daemons, "runs_per_s": len(per_slot) / span,
        "missed": max(0.0, 1 - len(per_slot) / expected),
        "duplicates": sum(n - 1 for n in per_slot.values()),
        "claim_median_ms": 1000 * quantile(buckets, 0.5),
        "claim_p99_ms": 1000 * quantile(buckets, 0.99),
        "delay_median_ms": 1000 * statistics.median(delays) if delays else float("nan"),
        "delay_p99_ms": 1000 * delays[int(0.99 * (len(delays) - 1))] if delays else float("nan"),
        "connections": peak,
        "share": (min(shares.values()) / len(runs), max(shares.values()) / len(runs))
        if runs and len(shares) == daemons else (0.0, 1.0),
        "failed": sum(r.status != "ok" for r in runs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--daemons", type=int, nargs="+", default=[1, 2, 5, 10])
    parser.add_argument("--out", default="fleet.txt", help="file name under bench/results")
    parser.add_argument("--claims-only", action="store_true",
                        help="only measure PostgreSQL's claim rate with pgbench")
    args = parser.parse_args()
    import pgserver

    pgdata = Path(tempfile.mkdtemp(prefix="ragmon-fleet-pg-"))
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    folder = Path(tempfile.mkdtemp(prefix="ragmon-fleet-"))
    vector_index(folder)
    rows = []
    load_before = os.getloadavg()
    try:
        rate = claim_rate(server)
        print(f"claims/s, PostgreSQL alone (pgbench, 4 clients): {rate:.0f}", flush=True)
        for d in [] if args.claims_only else args.daemons:
            row = measure(server.get_uri(), folder, d, args.probes, args.interval, args.seconds)
            rows.append(row)
            print(row, flush=True)
    finally:
        server.cleanup()
    lines = [
        f"{args.probes} probes every {args.interval:g} s ({args.probes / args.interval:g} "
        f"slots/s demanded), {args.seconds:g} s measured per row, one PostgreSQL (pgserver), "
        "scheduler.max_workers 8, store pool 4 + 4 per daemon; load average (1 min) "
        f"{load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after, on "
        f"{os.cpu_count()} CPUs. PostgreSQL alone commits {rate:.0f} claims/s (pgbench, "
        "4 clients, the claim statement one per transaction).", "",
        "| daemons | slots run/s | missed | duplicates | claim median ms | claim p99 ms | "
        "claimed after slot, median / p99 ms | PG connections | share of runs min-max | "
        "failed runs |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['daemons']} | {r['runs_per_s']:.1f} | {100 * r['missed']:.1f}% | "
            f"{r['duplicates']} | {r['claim_median_ms']:.1f} | {r['claim_p99_ms']:.0f} | "
            f"{r['delay_median_ms']:.0f} / {r['delay_p99_ms']:.0f} | {r['connections']} | "
            f"{100 * r['share'][0]:.0f}-{100 * r['share'][1]:.0f}% | {r['failed']} |")
    if args.claims_only:
        lines = [f"PostgreSQL alone commits {rate:.0f} claims/s (pgbench, 4 clients, the claim "
                 f"statement one per transaction); load average (1 min) {load_before[0]:.1f} "
                 f"before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPUs."]
    text = "\n".join(lines) + "\n"
    (BENCH / "results").mkdir(exist_ok=True)
    (BENCH / "results" / args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
