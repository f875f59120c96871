"""A replica for the exactly-once tests, run as its own process: it loads the config, says
``ready``, then per line read from stdin does what the line says and prints the outcome as
one JSON line.

- ``attempt ISO`` : one scheduled attempt (claim, render, send, record) as at time ISO;
- ``claim ISO``   : only claim the period (then the test kills this process: a replica that
  died between claiming and sending).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime

from ragmon.alerts.report.delivery import ReportSender
from ragmon.monitor.app import load_config
from ragmon.monitor.store import Store


def main(config_path: str, replica: str) -> None:
    config = load_config(config_path, environ={})
    store = Store(config.store.url.get_secret_value())
    sender = ReportSender(store, config, replica=replica)
    print("ready", flush=True)
    for line in sys.stdin:
        what, at = line.split()
        now = datetime.fromisoformat(at)
        if what == "claim":
            claim = sender.claims.claim(sender.current_period(now), now)
            print(json.dumps({"replica": replica, "claimed": claim is not None}), flush=True)
            continue
        outcome = sender.attempt(now=now)
        print(json.dumps({"replica": replica, "status": outcome.status,
                          "period": outcome.period.key, "error": outcome.error}), flush=True)
    store.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
