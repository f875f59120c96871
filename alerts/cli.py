"""``ragmon alerts list`` (the current state, from the store) and ``ragmon alerts test SINK``
(send a test notification through one configured sink, now, without the outbox)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from ragmon.alerts.config import alerts_section
from ragmon.monitor.cli import CommandGroups, load
from ragmon.monitor.common import Redactor, iso
from ragmon.monitor.errors import RagmonError, SinkError

EXIT_OK, EXIT_FAILED = 0, 1
TEST_RULE = "RagmonTestNotification"
TEST_ALERT_TTL = 300.0  # seconds a test alert stays active in Alertmanager without --resolve


def add_commands(cli: CommandGroups) -> None:
    """Add ``ragmon alerts list`` and ``ragmon alerts test SINK`` to the command line."""
    sub = cli.group("alerts", "in-daemon alerts: show their state, test a sink")
    p = sub.add_parser("list", help="show every alert rule's state and the delivery queue",
                       description="Show every alert rule's state and the delivery queue.")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    cli.config_arg(p)
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("test", help="send a test notification through one sink",
                       description="Send a test notification through one configured sink now.")
    p.add_argument("sink", metavar="SINK", help="sink name from the config's alerts.sinks")
    p.add_argument("--resolve", action="store_true",
                   help="send the matching resolved notification afterwards")
    cli.config_arg(p)
    p.set_defaults(func=cmd_test)


def cmd_list(args: argparse.Namespace) -> int:
    from ragmon.alerts.status import alert_rows
    from ragmon.monitor.store import Store

    config = load(args)
    store = Store(config.store.url.get_secret_value(), instance=config.deployment.name)
    try:
        store.require_head()
        rows, queue = alert_rows(config, store)
    finally:
        store.close()
    if args.json:
        print(json.dumps({"alerts": rows, "sinks": queue}, indent=2, default=str))
        return EXIT_OK
    print(_table(["RULE", "STATE", "SINCE", "LAST NOTIFIED", "VALUE", "LABELS"], [[
        r["rule"] + ("" if r["configured"] else " (not configured)"), r["state"],
        r["since"] or "-", r["last_notified"] or "-",
        "-" if r["value"] is None else f"{r['value']:.6g}" if isinstance(r["value"], float)
        else str(r["value"]),
        ",".join(f"{k}={v}" for k, v in r["labels"].items()),
    ] for r in rows]) if rows else "no alert rules are configured (alerts.rules)")
    if queue:
        print()
        print(_table(["SINK", "KIND", "PENDING", "SENDING", "SENT", "FAILED", "LAST ERROR"], [[
            q["sink"], q["kind"], str(q["pending"]), str(q["sending"]), str(q["sent"]),
            str(q["failed"]), q["last_error"] or "-",
        ] for q in queue]))
    return EXIT_OK


def test_notification(status: str = "firing") -> Any:
    from ragmon.alerts.sinks import Notification

    now = iso(datetime.now(UTC))
    assert now is not None
    return Notification(
        status=status, rule=TEST_RULE, fingerprint="0" * 16,
        labels={"alertname": TEST_RULE, "severity": "info", "probe": "ragmon-test"},
        annotations={"summary": "Test notification from ragmon",
                     "description": "Sent by `ragmon alerts test`: this sink works."},
        starts_at=now, ends_at=now if status == "resolved" else None,
        details={"test": True},
    )


def cmd_test(args: argparse.Namespace) -> int:
    from ragmon.alerts.sinks import build_sink

    config = load(args)
    sinks = alerts_section(config).sinks
    if args.sink not in sinks:
        valid = ", ".join(sorted(sinks)) or "none: 'alerts.sinks' is empty"
        raise RagmonError(f"no sink named {args.sink!r}; valid sinks: {valid}")
    sink_config = sinks[args.sink]
    if sink_config.kind == "alertmanager":  # a test alert must not stay active for a day
        sink_config = sink_config.model_copy(update={"ttl": TEST_ALERT_TTL})
    sink = build_sink(args.sink, sink_config, alerts_section(config).delivery.timeout)
    redact = _redactor(config)
    for status in ("firing", "resolved") if args.resolve else ("firing",):
        try:
            sink.send(test_notification(status))
        except SinkError as exc:
            raise SinkError(redact(str(exc))) from None
        print(f"sent a {status} test notification through sink {args.sink!r} ({sink.kind})")
    return EXIT_OK


def _redactor(config: Any) -> Any:

    return Redactor(alerts_section(config).secrets())


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=False)).rstrip()
        for line in [header, *rows]
    )
