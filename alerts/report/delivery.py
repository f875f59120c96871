"""Sending the report: the period a schedule closes, the email, and one claimed attempt.

The email is multipart/alternative: the plain-text twin, then the HTML part, which becomes
multipart/related with each chart as an image part whose Content-ID the HTML refers to
(``cid:...``). It goes through the SMTP session the alert email sink uses
(``ragmon.alerts.smtp``).

A scheduled attempt (:meth:`ReportSender.attempt`) claims the period in ``report_runs``
first (``claim.py``), then renders and sends, then records the outcome; a failure is
retried with backoff within the period, and nothing here raises into the scheduler.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid
from typing import Any

from ragmon.alerts.after_send import record_after_send
from ragmon.alerts.report.claim import Claim, ReportClaims
from ragmon.alerts.report.config import ReportConfig, report_section
from ragmon.alerts.report.model import Period, Rendered
from ragmon.monitor.common import Redactor, iso
from ragmon.monitor.config import RootConfig, secret_values
from ragmon.monitor.store import Store

log = logging.getLogger("ragmon.report")
Render = Callable[..., Rendered]
#: How far back a schedule's last fire is looked for, widening until one is found.
_LOOKBACK = (timedelta(hours=2), timedelta(days=2), timedelta(days=9), timedelta(days=33),
             timedelta(days=367), timedelta(days=366 * 5))


def scheduled_period(schedule: str, length: float, now: datetime) -> Period:
    """The period the schedule's last fire at or before ``now`` closes: it ends at that
    fire (UTC, to the minute) and lasts ``length`` seconds. Every replica computes the same
    one, however late its job runs."""
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab(schedule, timezone="UTC")
    for back in _LOOKBACK:
        fire, last = trigger.get_next_fire_time(None, now - back), None
        while fire is not None and fire <= now:
            last = fire
            fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
        if last is not None:
            until = last.astimezone(UTC).replace(second=0, microsecond=0)
            return Period(until - timedelta(seconds=length), until)
    raise ValueError(f"schedule {schedule!r} has not fired in the last five years")


def report_message(rendered: Rendered, cfg: ReportConfig, to: list[str] | None = None) -> \
        EmailMessage:
    """The email of a rendered report: text/plain and HTML alternatives, charts related to
    the HTML by Content-ID."""
    msg = EmailMessage()
    prefix = cfg.subject_prefix.strip()
    msg["Subject"] = f"{prefix} {rendered.subject}" if prefix else rendered.subject
    msg["From"] = cfg.sender or ""
    msg["To"] = ", ".join(to if to is not None else cfg.to)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain="ragmon")
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html_email, subtype="html")
    html = next(p for p in msg.iter_parts() if p.get_content_type() == "text/html")
    for image in rendered.images:
        html.add_related(image.png, maintype="image", subtype="png", cid=f"<{image.cid}>",
                         filename=f"{image.cid.partition('@')[0]}.png")
    return msg


def recipients(cfg: ReportConfig) -> list[str]:
    """The bare addresses of ``to`` (display names dropped)."""
    return [address for _, address in getaddresses(cfg.to)]


@dataclass
class Outcome:
    """What one attempt did: ``sent``, ``failed`` (retry at ``retry_at``, or given up),
    ``skipped`` (not claimed: sent already, held by another replica, or not due)."""

    status: str
    period: Period
    error: str | None = None
    retry_at: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)


class ReportSender:
    """Renders and sends one period's report, claimed or not."""

    def __init__(self, store: Store, config: RootConfig, *, replica: str | None = None,
                 render: Render | None = None):
        self.store = store
        self.config = config
        self.section = report_section(config)
        self.claims = ReportClaims(store, self.section.retry, replica=replica)
        self.redact = Redactor([*secret_values(config), *self.section.secrets()])
        if render is None:
            from ragmon.alerts.report.render import render_report

            render = render_report
        self.render = render

    @property
    def replica(self) -> str:
        return self.claims.replica

    def current_period(self, now: datetime | None = None) -> Period:
        return scheduled_period(self.section.schedule, self.section.period,
                                now or datetime.now(UTC))

    def attempt(self, now: datetime | None = None, *, by_hand: bool = False) -> Outcome:
        """Claim the current period and send its report if it is due; never raises.
        ``by_hand``: also a period whose retries ended (see ``ReportClaims.claim``)."""
        period = self.current_period(now)
        try:
            claim = self.claims.claim(period, now, by_hand=by_hand)
        except Exception as exc:  # noqa: BLE001 - a store blip: the next tick tries again
            error = self.redact(str(exc)) or type(exc).__name__
            log.warning("report %s: cannot claim the period: %s", period.key, error)
            return Outcome("skipped", period, error)
        if claim is None:
            log.debug("report %s: not claimed by %s (sent, held by another replica, or not "
                      "due)", period.key, self.replica)
            return Outcome("skipped", period)
        log.info("report %s: claimed by %s (attempt %d)", period.key, self.replica,
                 claim.attempt)
        return self._send_claimed(claim, now)

    def _send_claimed(self, claim: Claim, now: datetime | None = None) -> Outcome:
        """Render, send and record; ``now`` (tests) stands for the clock when recording."""
        period = claim.period
        try:
            details = self.send(period, deadline=claim.deadline)
        except Exception as exc:  # noqa: BLE001 - recorded and retried, never raised
            error = self.redact(str(exc)) or type(exc).__name__
            try:
                retry_at = self.claims.failed(claim, error, now)
            except Exception as store_exc:  # noqa: BLE001 - the lease lets another retry
                log.warning("report %s: cannot record the failure: %s", period.key,
                            self.redact(str(store_exc)))
                retry_at = None
            if retry_at is None:
                log.error("report %s: sending failed (attempt %d), giving up for this "
                          "period: %s", period.key, claim.attempt, error)
            else:
                log.warning("report %s: sending failed (attempt %d), retrying at %s: %s",
                            period.key, claim.attempt, iso(retry_at), error)
            return Outcome("failed", period, error, retry_at)
        self._record_sent(claim, details, now)
        log.info("report %s: sent to %d recipient(s)", period.key, len(self.section.to))
        return Outcome("sent", period, details=details)

    def _record_sent(self, claim: Claim, details: dict[str, Any],
                     now: datetime | None) -> None:
        """Record the send while the claim holds, retrying a failing store: a report sent
        but still ``claimed`` when the lease ends is sent again by whoever takes it over."""
        record_after_send(f"report {claim.period.key}",
                          lambda: self.claims.sent(claim, details, now),
                          send_deadline=claim.deadline, lease=self.section.retry.lease,
                          log=log, redact=self.redact)

    def send(self, period: Period, *, deadline: float | None = None,
             to: list[str] | None = None) -> dict[str, Any]:
        """Render ``period`` and send it now (no claim); returns what was sent. Raises
        SmtpSendError (or the renderer's error) when it was not."""
        from ragmon.alerts.smtp import send_message

        cfg = self.section
        if cfg.smtp is None or cfg.sender is None or not (to or cfg.to):
            raise ValueError("report.smtp, report.from and report.to must be set to send")
        deadline = deadline or time.monotonic() + cfg.smtp.timeout
        rendered = self.render(self.store, self.config, period)
        message = report_message(rendered, cfg, to)
        password = cfg.smtp.password.get_secret_value() if cfg.smtp.password else None
        refused = send_message(
            message, host=cfg.smtp.host, port=cfg.smtp.port, security=cfg.smtp.security,
            deadline=min(deadline, time.monotonic() + cfg.smtp.timeout),
            username=cfg.smtp.username, password=password, ca_file=cfg.smtp.ca_file)
        if refused:
            log.warning("report %s: the server refused some recipients: %s", period.key,
                        ", ".join(sorted(refused)))
        return {"subject": str(message["Subject"]), "status": rendered.status,
                "recipients": len(to or cfg.to), "refused": sorted(refused),
                "bytes": len(message.as_bytes()), "images": len(rendered.images)}
