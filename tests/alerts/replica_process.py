"""One ragmon replica's alerting, in its own process, for the exactly-once test.

Usage: python replica_process.py STORE_URL CONFIG_JSON START_AT RECALL FINISHED_AT

Waits until the wall clock reaches START_AT (so replicas race), evaluates one recall run
(as if this replica had run the probe) and delivers until nothing is left to send. Prints
a JSON line: how many notifications this replica queued and how many it claimed.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from alert_support import alerts_config, recall_run  # noqa: E402
from sqlalchemy import select  # noqa: E402

from ragmon.alerts.delivery import DeliveryWorker  # noqa: E402
from ragmon.alerts.engine import AlertEngine  # noqa: E402
from ragmon.alerts.tables import AlertNotification  # noqa: E402
from ragmon.monitor.store import Store  # noqa: E402


def main() -> int:
    url, config_json, start_at, recall, finished_at = sys.argv[1:6]
    store = Store(url)
    cfg = alerts_config(json.loads(config_json))
    engine, worker = AlertEngine(cfg, store), DeliveryWorker(store, cfg)
    run = recall_run(float(recall), datetime.fromisoformat(finished_at))
    with store.session() as s:  # connect now, so that the replicas really race below
        s.scalars(select(AlertNotification.id).limit(1)).all()
    while time.time() < float(start_at):
        time.sleep(0.001)
    queued = engine.evaluate("docs-recall", run)
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
    print(json.dumps({"queued": queued, "claimed": claimed}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
