"""``ragmon report``: build the report of a period from the store, print its text part or
write the self-contained HTML (``--out report.html``). The period defaults to the 7 days
before now; ``--since`` and ``--until`` (UTC) override it."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ragmon.alerts.report.model import Period
from ragmon.alerts.report.send_cli import add_delivery_arguments, run_delivery, wants_delivery
from ragmon.monitor.cli import CommandGroups, load

EXIT_OK, EXIT_USAGE = 0, 2
DEFAULT_LENGTH = timedelta(days=7)


def utc_time(text: str) -> datetime:
    """An ISO 8601 date or date and time; without an offset it is taken as UTC."""
    try:
        ts = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date or time; use ISO 8601 such as 2026-11-23 or "
            "2026-11-23T08:00Z") from None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def add_commands(cli: CommandGroups) -> None:
    """Add ``ragmon report`` to the command line."""
    p = cli.sub.add_parser(
        "report", help="build the weekly report of a period from the stored history",
        description="Build the report of a period from the stored history: print its text "
        "part, or write the self-contained HTML with --out. The period is the 7 days before "
        "now unless --since/--until say otherwise (UTC; a date alone means 00:00).")
    p.add_argument("--since", type=utc_time, metavar="TIME",
                   help="start of the period, included (default: --until minus 7 days)")
    p.add_argument("--until", type=utc_time, metavar="TIME",
                   help="end of the period, excluded (default: now)")
    p.add_argument("--out", type=Path, metavar="FILE",
                   help="write the HTML report here (images embedded) instead of printing text")
    add_delivery_arguments(p)
    cli.config_arg(p)
    p.set_defaults(func=cmd_report)


def period_of(args: argparse.Namespace, now: datetime) -> Period:
    """The period the arguments name; an empty or reversed one is a usage error."""
    until = args.until or now
    since = args.since or until - DEFAULT_LENGTH
    if since >= until:
        raise SystemExit(f"ragmon report: error: --since {since:%Y-%m-%dT%H:%MZ} is not before "
                         f"--until {until:%Y-%m-%dT%H:%MZ}; give a start earlier than the end")
    return Period(since, until)


def cmd_report(args: argparse.Namespace) -> int:
    from ragmon.alerts.report.render import render_report
    from ragmon.monitor.store import Store

    config = load(args)
    period = period_of(args, datetime.now(UTC))
    if wants_delivery(args):
        return run_delivery(args, config, period)
    store = Store(config.store.url.get_secret_value())
    try:
        store.require_head()
        rendered = render_report(store, config, period)
    finally:
        store.close()
    if args.out is None:
        sys.stdout.write(rendered.text)
        return EXIT_OK
    try:
        args.out.write_text(rendered.html_file, encoding="utf-8")
    except OSError as exc:
        print(f"ragmon report: error: cannot write --out {str(args.out)!r}: {exc.strerror}; "
              "choose a writable path", file=sys.stderr)
        return EXIT_USAGE
    print(f"report {period.key}: {rendered.status}; written to {args.out}")
    return EXIT_OK


__all__ = ["add_commands", "cmd_report", "period_of", "utc_time"]
