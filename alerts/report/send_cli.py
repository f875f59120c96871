"""``ragmon report --send`` and ``--dry-run``: deliver a report from a shell.

``--send`` sends the report of the period (``--since``/``--until``, default the 7 days
before now) to ``report.to`` now. It is a copy on demand: it claims nothing, so it neither
counts as the period's scheduled report nor stops the daemon from sending that one, and it
is not recorded in ``report_runs``. ``--send --scheduled`` sends the period the schedule
closed last through the same claim as the daemon: exactly once, recorded, and it clears
``RagmonReportMissing`` (the way to resend by hand after a failed Monday; a period already
sent is not sent again). ``--dry-run`` prints what would be sent (subject, addresses,
sizes and the text part) without connecting to the mail server or claiming anything.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from ragmon.alerts.report.model import Period
from ragmon.monitor.config import RootConfig

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_delivery_arguments(p: argparse.ArgumentParser) -> None:
    """The delivery flags of ``ragmon report``."""
    what = p.add_mutually_exclusive_group()
    what.add_argument("--send", action="store_true",
                      help="send the report to report.to now (a copy on demand: the "
                      "scheduled report of the period is still sent by the daemon)")
    what.add_argument("--dry-run", action="store_true",
                      help="print what --send would send (subject, addresses, sizes, the "
                      "text part) without sending")
    p.add_argument("--scheduled", action="store_true",
                   help="with --send or --dry-run: the period the schedule closed last, sent "
                   "through the daemon's claim (once, recorded; a sent period is not resent)")


def wants_delivery(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "send", False) or getattr(args, "dry_run", False))


def run_delivery(args: argparse.Namespace, config: RootConfig, period: Period) -> int:
    """``--send`` / ``--dry-run`` for the period the other arguments name."""
    from ragmon.alerts.report.config import report_section
    from ragmon.monitor.store import Store

    section = report_section(config)
    if args.scheduled and (args.since or args.until):
        return _usage("--scheduled sends the period the schedule closed last; drop --since "
                      "and --until")
    if args.send and (section.smtp is None or section.sender is None or not section.to):
        missing = [k for k, v in (("report.smtp", section.smtp), ("report.from",
                   section.sender), ("report.to", section.to)) if not v]
        return _usage(f"--send needs {', '.join(missing)} in {config.source}")
    store = Store(config.store.url.get_secret_value())
    try:
        store.require_head()
        return _deliver(args, config, store, period)
    finally:
        store.close()


def _deliver(args: argparse.Namespace, config: RootConfig, store: Any, period: Period) -> int:
    from ragmon.alerts.report.delivery import ReportSender

    sender = ReportSender(store, config)
    if args.scheduled:
        period = sender.current_period(datetime.now(UTC))
    if args.dry_run:
        _print_dry_run(sender, period)
        return EXIT_OK
    if not args.scheduled:
        try:
            details = sender.send(period)
        except Exception as exc:  # noqa: BLE001 - one line, secrets masked
            print(f"ragmon report: error: report {period.key} not sent: "
                  f"{sender.redact(str(exc))}", file=sys.stderr)
            return EXIT_FAILED
        print(f"report {period.key}: sent to {details['recipients']} recipient(s) "
              "(on demand; the scheduled report is not affected)")
        return EXIT_OK
    outcome = sender.attempt(by_hand=True)
    if outcome.status == "sent":
        print(f"report {period.key}: sent as the scheduled report")
        return EXIT_OK
    if outcome.status == "failed":
        print(f"ragmon report: error: report {period.key} not sent: {outcome.error}",
              file=sys.stderr)
        return EXIT_FAILED
    row = sender.claims.row(period)
    why = "claimed by no one" if row is None else (
        f"already sent at {row.finished_at:%Y-%m-%dT%H:%M:%SZ}" if row.status == "sent" and
        row.finished_at else f"{row.status}, held by {row.claimed_by}")
    print(f"report {period.key}: not sent: {why}")
    return EXIT_OK


def _print_dry_run(sender: Any, period: Period) -> None:
    from ragmon.alerts.report.delivery import report_message

    section = sender.section
    rendered = sender.render(sender.store, sender.config, period)
    message = report_message(rendered, section)
    smtp = section.smtp
    lines = [
        f"period:     {period.key}",
        f"subject:    {message['Subject']}",
        f"from:       {section.sender or '(report.from is not set)'}",
        f"to:         {', '.join(section.to) or '(report.to is not set)'}",
        f"server:     {f'{smtp.host}:{smtp.port} ({smtp.security})' if smtp else '(not set)'}",
        f"size:       {len(message.as_bytes())} bytes (text {len(rendered.text.encode())}, "
        f"html {len(rendered.html_email.encode())}, {len(rendered.images)} chart(s) "
        f"{sum(len(i.png) for i in rendered.images)} bytes)",
        "", rendered.text,
    ]
    sys.stdout.write("\n".join(lines))


def _usage(message: str) -> int:
    print(f"ragmon report: error: {message}", file=sys.stderr)
    return EXIT_USAGE
