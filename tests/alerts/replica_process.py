"""One ragmon replica's alerting, in its own process, for the exactly-once test.

Usage: python replica_process.py STORE_URL CONFIG_JSON REPLICA RECALL FINISHED_AT [--break-claim]

Two barriers, held by the test on stdin/stdout, make the replicas race however slowly each
one started: connected, it prints ``ready`` and waits for ``go``; then it evaluates one
recall run (as if this replica had run the probe), prints ``evaluated`` and waits for
``deliver``; then it delivers, as worker REPLICA, until nothing is left to send. Prints a
JSON line: the replica, how many notifications it queued and how many it claimed.

``--break-claim`` is the mutation the test must catch: the claim no longer checks that the
row is still due, and a send no longer checks that its claim still holds, so every replica
that selected a row also sends it.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from alert_support import alerts_config, recall_run  # noqa: E402
from sqlalchemy import select, update  # noqa: E402

from ragmon.alerts.delivery import Claim, DeliveryWorker  # noqa: E402
from ragmon.alerts.engine import AlertEngine  # noqa: E402
from ragmon.alerts.tables import AlertNotification  # noqa: E402
from ragmon.monitor.store import Store  # noqa: E402


def break_claim() -> None:
    """Claim a row whatever its status: the claim always "succeeds", and it is never checked
    again (before sending or when recording the result)."""

    def claim(self: DeliveryWorker, row_id: int, sink: str) -> Claim:
        started = time.monotonic()
        until = datetime.now(UTC) + timedelta(seconds=self.delivery.lease)
        with self.store.session() as s:
            s.execute(update(AlertNotification).where(AlertNotification.id == row_id).values(
                status="sending", claimed_by=self.replica, claimed_until=until))
        return Claim(row_id, sink, until, started + self.send_limit)

    DeliveryWorker._claim = claim  # type: ignore[method-assign]
    DeliveryWorker._held = lambda self, claim: AlertNotification.id == claim.row_id  # type: ignore[method-assign]


def barrier(arrived: str, release: str) -> None:
    """Tell the test this replica has arrived, and wait until it releases every replica."""
    print(arrived, flush=True)
    line = sys.stdin.readline().strip()
    if line != release:
        raise SystemExit(f"expected {release!r} on stdin, got {line!r}")


def main() -> int:
    url, config_json, replica, recall, finished_at = sys.argv[1:6]
    if "--break-claim" in sys.argv[6:]:
        break_claim()
    store = Store(url)
    cfg = alerts_config(json.loads(config_json))
    engine = AlertEngine(cfg, store)
    worker = DeliveryWorker(store, cfg, replica=replica)
    run = recall_run(float(recall), datetime.fromisoformat(finished_at))
    with store.session() as s:  # connect now, so that the replicas really race below
        s.scalars(select(AlertNotification.id).limit(1)).all()
    barrier("ready", "go")
    queued = engine.evaluate("docs-recall", run)
    barrier("evaluated", "deliver")  # every notification is queued: both claim at once
    claimed = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        claimed += worker.run_once()
        with store.session() as s:
            statuses = set(s.scalars(select(AlertNotification.status)))
        if statuses <= {"sent", "superseded", "failed"}:
            break
        time.sleep(0.01)
    worker.close()
    store.close()
    print(json.dumps({"replica": replica, "queued": queued, "claimed": claimed}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
