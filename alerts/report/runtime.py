"""The report inside a running daemon: the scheduled send and its retries, the metrics, and
the ``/report`` page (``install`` wires them in).

Jobs (APScheduler, UTC): ``report:send`` fires on ``report.schedule``; ``report:retry``
runs every ``report.retry.poll`` (and 5 s after start), and sends the current period's
report when it is due: a failed attempt whose retry time came, a claim whose replica died
before sending, or a period no replica sent because every daemon was down at the scheduled
time (up to ``retry.give_up_after`` after it). Both go through the claim in
``report_runs``, so replicas sharing the store send each period once.

Metrics, read from the store so that every replica exports the same values:
``ragmon_report_last_success_timestamp_seconds`` (when the last scheduled report was sent;
before the first, the first attempt in the store or, earlier, when this daemon started
sending reports, so that a report that never goes out still trips ``RagmonReportMissing``
however often the daemons restart), ``ragmon_report_last_period_end_timestamp_seconds``
(the end of the period it covered) and ``ragmon_report_send_failures_total``.
"""

from __future__ import annotations

import hmac
import logging
import weakref
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from ragmon.alerts.report.claim import SCHEDULED
from ragmon.alerts.report.config import ReportConfig, report_section
from ragmon.alerts.report.delivery import ReportSender
from ragmon.alerts.report.model import Period
from ragmon.alerts.report.tables import ReportRun
from ragmon.monitor.common import Redactor, utc
from ragmon.monitor.config import RootConfig, secret_values
from ragmon.monitor.store import Store

if TYPE_CHECKING:
    from ragmon.monitor.daemon import Daemon

log = logging.getLogger("ragmon.report")
#: The longest period ``/report?since=&until=`` renders.
MAX_SPAN = timedelta(days=366)
#: When each running daemon first had the report enabled.
_FIRST_ENABLED: weakref.WeakKeyDictionary[Any, datetime] = weakref.WeakKeyDictionary()


class ReportCollector(Collector):
    """The report's metrics, from ``report_runs``."""

    def __init__(self, store: Store, started: datetime, report: str = SCHEDULED):
        self.store = store
        self.started = started
        self.report = report

    def describe(self) -> list[Any]:
        return []  # values come from the store; skip registry-time collection

    def collect(self) -> Iterator[Any]:
        try:
            with self.store.session() as s:
                last = s.execute(
                    select(ReportRun.finished_at, ReportRun.until)
                    .where(ReportRun.report == self.report, ReportRun.status == "sent")
                    .order_by(ReportRun.until.desc()).limit(1)).first()
                failures, first = s.execute(
                    select(func.coalesce(func.sum(ReportRun.failures), 0),
                           func.min(ReportRun.started_at))
                    .where(ReportRun.report == self.report)).one()
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail on a store blip
            log.warning("report metrics: cannot read the store: %s", exc)
            return
        # Never sent: the wait counts from the first attempt in the store when there is one,
        # so that restarting the daemons does not hold RagmonReportMissing off.
        success = last[0] if last is not None and last[0] is not None else \
            min(self.started, utc(first)) if first is not None else self.started
        yield GaugeMetricFamily(
            "ragmon_report_last_success_timestamp_seconds",
            "When the last scheduled report was sent (before the first: the first attempt, "
            "or when this daemon started sending reports if earlier).", value=success.timestamp())
        if last is not None:
            yield GaugeMetricFamily(
                "ragmon_report_last_period_end_timestamp_seconds",
                "End of the period the last sent report covered.", value=last[1].timestamp())
        yield CounterMetricFamily(
            "ragmon_report_send_failures", "Failed attempts to send the scheduled report.",
            value=int(failures or 0))


def parse_time(value: str, name: str) -> datetime:
    """``2026-11-23``, ``2026-11-23T08:00`` or with an offset (``Z``); naive means UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a time; write ISO 8601, like "
                         "2026-11-23 or 2026-11-23T08:00Z") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def requested_period(query: str, length: float, now: datetime) -> Period:
    """The period of ``?since=&until=`` (each optional): by default the ``length`` up to now."""
    params = parse_qs(query)
    until = parse_time(params["until"][0], "until") if "until" in params else now
    since = parse_time(params["since"][0], "since") if "since" in params else \
        until - timedelta(seconds=length)
    if since >= until:
        raise ValueError("since must be before until")
    if until - since > MAX_SPAN:
        raise ValueError(f"the period is longer than {MAX_SPAN.days} days; ask for less")
    return Period(since, until)


def report_app(store: Store, config: RootConfig,
               render: Callable[..., Any] | None = None) -> Callable[..., Iterable[bytes]]:
    """WSGI app of ``GET /report[?since=&until=]``: the self-contained HTML report, behind
    the bearer token of ``report.endpoint``."""
    section = report_section(config)
    token = section.endpoint.token
    expected = f"Bearer {token.get_secret_value()}".encode() if token is not None else None
    redact = Redactor([*secret_values(config), *section.secrets()])

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        given = environ.get("HTTP_AUTHORIZATION", "").encode()
        if expected is None or not hmac.compare_digest(given, expected):
            return _answer(start_response, "401 Unauthorized", "text/plain",
                           "a bearer token is required (Authorization: Bearer TOKEN)\n",
                           [("WWW-Authenticate", 'Bearer realm="ragmon"')])
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return _answer(start_response, "405 Method Not Allowed", "text/plain",
                           "use GET\n", [("Allow", "GET, HEAD")])
        try:
            period = requested_period(environ.get("QUERY_STRING", ""), section.period,
                                      datetime.now(UTC))
        except ValueError as exc:
            return _answer(start_response, "400 Bad Request", "text/plain", f"{exc}\n")
        try:
            html = _render(render)(store, config, period).html_file
        except Exception as exc:  # noqa: BLE001 - one bad request never stops the daemon
            log.exception("/report %s: rendering failed", period.key)
            return _answer(start_response, "500 Internal Server Error", "text/plain",
                           f"the report could not be rendered: {redact(str(exc))}\n")
        return _answer(start_response, "200 OK", "text/html; charset=utf-8", html,
                       [("Cache-Control", "no-store")])

    return app


def _render(render: Callable[..., Any] | None) -> Callable[..., Any]:
    if render is not None:
        return render
    from ragmon.alerts.report.render import render_report

    return render_report


def _answer(start_response: Callable[..., Any], status: str, kind: str, body: str,
            headers: list[tuple[str, str]] | None = None) -> Iterable[bytes]:
    data = body.encode()
    start_response(status, [("Content-Type", kind), ("Content-Length", str(len(data))),
                            *(headers or [])])
    return [data]


def install(daemon: Daemon) -> None:
    """Plug the report into a starting daemon (a daemon extension): the send and retry jobs
    and the metrics when ``report.enabled``, the ``/report`` page when
    ``report.endpoint.enabled``. It returns nothing, so a config reload removes what it
    added and installs it again with the new settings."""
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    section: ReportConfig = report_section(daemon.config)
    assert daemon.store is not None and daemon.scheduler is not None
    if section.endpoint.enabled:
        daemon.context.http_routes["/report"] = report_app(daemon.store, daemon.config)
    if not section.enabled:
        return
    now = datetime.now(UTC)
    # A reload installs this extension again: the wait for a first report counts from the
    # first install, so that reloading never holds RagmonReportMissing off.
    started = _FIRST_ENABLED.setdefault(daemon, now)
    sender = ReportSender(daemon.store, daemon.config)
    daemon.registry.register(ReportCollector(daemon.store, started))
    grace = max(1, int(section.retry.give_up_after))
    daemon.scheduler.add_job(
        sender.attempt, CronTrigger.from_crontab(section.schedule, timezone="UTC"),
        id="report:send", name="weekly report", replace_existing=True, coalesce=True,
        max_instances=1, misfire_grace_time=grace)
    daemon.scheduler.add_job(
        sender.attempt, IntervalTrigger(seconds=section.retry.poll, timezone="UTC"),
        id="report:retry", name="weekly report retries", replace_existing=True,
        coalesce=True, max_instances=1, misfire_grace_time=grace,
        next_run_time=now + timedelta(seconds=5))
    log.info("report: %s (UTC) to %d recipient(s), period %gs; replica %s",
             section.schedule, len(section.to), section.period, sender.replica)
