"""The report is delivered to a real SMTP server (aiosmtpd on 127.0.0.1 requiring STARTTLS
and AUTH) as multipart/alternative: a plain-text part whose numbers are the stored ones, and
an HTML part whose every ``cid:`` resolves to an attached chart. A server that is down,
refuses the login or refuses the recipient is retried, recorded and counted; nothing raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from ragmon.alerts.report.delivery import ReportSender, report_message, scheduled_period
from ragmon.alerts.report.model import Period, Rendered
from ragmon.alerts.report.runtime import ReportCollector
from ragmon.alerts.report.tables import ReportRun
from ragmon.monitor.http import free_port
from ragmon.monitor.store import Store

from .delivery_support import (
    EXACT_RECALL,
    LIVE_RECALL,
    PASSWORD,
    REFUSED,
    SENDER,
    UNTIL,
    config_with,
    make_certificate,
    report_section,
    smtp_server,
    store_history,
)

#: A moment just after the scheduled Monday 08:00 that closes the tested period.
AT = UNTIL + timedelta(minutes=1)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'ragmon.db'}")
    s.migrate()
    store_history(s)
    yield s
    s.close()


def store_url(store: Store) -> str:
    return store.engine.url.render_as_string(hide_password=False)


def rows(store: Store) -> list[ReportRun]:
    with store.session() as s:
        found = list(s.scalars(select(ReportRun).order_by(ReportRun.id)))
        s.expunge_all()
    return found


def metric(store: Store, name: str) -> float | None:
    registry = CollectorRegistry()
    registry.register(ReportCollector(store, UNTIL - timedelta(days=30)))
    return registry.get_sample_value(name)


def test_the_schedule_closes_the_week_before_its_last_fire() -> None:
    period = scheduled_period("0 8 * * mon", 7 * 86400, UNTIL + timedelta(days=3, hours=2))
    assert period == Period(UNTIL - timedelta(days=7), UNTIL)
    assert scheduled_period("0 8 * * mon", 7 * 86400, UNTIL) == period  # at the fire itself
    assert scheduled_period("0 8 * * mon", 7 * 86400, UNTIL - timedelta(seconds=1)) == \
        Period(UNTIL - timedelta(days=14), UNTIL - timedelta(days=7))


def test_the_report_arrives_over_starttls_with_auth(
    tmp_path: Path, store: Store, certificate: tuple[Path, Path]
) -> None:
    with smtp_server(certificate) as (port, mailbox):
        config = config_with(tmp_path, report_section(port, certificate[0]), store_url(store))
        outcome = ReportSender(store, config).attempt(now=AT)
        assert outcome.status == "sent", outcome.error
        ((rcpt, message),) = mailbox.wait_for(1)
    assert sorted(rcpt) == ["kb-owners@example.org", "search-team@example.org"]
    assert message["From"] == SENDER
    assert message["Subject"].startswith("[kb] ragmon weekly report 2026-11-23 08:00 to "
                                         "2026-11-30 08:00 UTC: ")

    # multipart/alternative: text/plain, then the HTML with its charts as related parts
    assert message.get_content_type() == "multipart/alternative"
    text_part, related = message.get_payload()  # type: ignore[misc]
    assert text_part.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html_part, *images = related.get_payload()
    assert html_part.get_content_type() == "text/html"
    assert images and all(i.get_content_type() == "image/png" for i in images)
    assert all(i.get_payload(decode=True).startswith(b"\x89PNG\r\n\x1a\n") for i in images)
    cids = re.findall(r'src="cid:([^"]+)"', html_part.get_content())
    attached = {i["Content-ID"].strip("<>") for i in images}
    assert cids and set(cids) == attached

    # the numbers of the text part are the stored history's
    text = text_part.get_content()
    mean = sum(LIVE_RECALL) / len(LIVE_RECALL)
    line = next(x for x in text.splitlines() if x.startswith("recall@10 live "))
    assert f"{mean:.3f}" in line and f"{LIVE_RECALL[-1]:.3f}" in line
    line = next(x for x in text.splitlines() if x.startswith("recall@10 exact "))
    assert f"{EXACT_RECALL:.3f}" in line
    assert re.search(r"^docs-recall\s+recall\s+4\s+75%", text, re.M), text
    assert PASSWORD not in message.as_string()

    (row,) = rows(store)
    assert (row.status, row.attempts, row.failures) == ("sent", 1, 0)
    assert row.period == "2026-11-23T08:00Z/2026-11-30T08:00Z"
    assert row.details["recipients"] == 2 and row.details["images"] == len(images)
    assert metric(store, "ragmon_report_last_success_timestamp_seconds") == \
        row.finished_at.timestamp()  # type: ignore[union-attr]
    assert metric(store, "ragmon_report_last_period_end_timestamp_seconds") == \
        UNTIL.timestamp()
    assert metric(store, "ragmon_report_send_failures_total") == 0


def test_a_sent_period_is_not_sent_again(
    tmp_path: Path, store: Store, certificate: tuple[Path, Path]
) -> None:
    with smtp_server(certificate) as (port, mailbox):
        config = config_with(tmp_path, report_section(port, certificate[0]), store_url(store))
        assert ReportSender(store, config).attempt(now=AT).status == "sent"
        # a restarted daemon (a new replica) an hour later, and the next poll
        again = ReportSender(store, config).attempt(now=AT + timedelta(hours=1))
        assert again.status == "skipped"
        mailbox.wait_for(1)
    assert len(mailbox.messages) == 1


def _failing_server(kind: str, certificate: tuple[Path, Path], tmp_path: Path,
                    store: Store):  # type: ignore[no-untyped-def]
    """The report config and the running server (or none) of one kind of failure."""
    if kind == "down":
        return config_with(tmp_path, report_section(free_port(), certificate[0]),
                           store_url(store)), None
    server = smtp_server(certificate)
    port, _ = server.__enter__()
    if kind == "auth":
        cfg = config_with(tmp_path, report_section(port, certificate[0]), store_url(store),
                          password="wrong-password-5d")
    else:
        cfg = config_with(tmp_path, report_section(port, certificate[0], to=[REFUSED]),
                          store_url(store))
    return cfg, server


def test_a_restart_does_not_hold_off_the_missing_report_alert(
    tmp_path: Path, store: Store, certificate: tuple[Path, Path]
) -> None:
    """Never sent: the wait counts from the first attempt in the store, not from the start
    of whichever daemon is scraped (pods restarted weekly would keep RagmonReportMissing
    quiet forever)."""
    config, _ = _failing_server("down", certificate, tmp_path, store)
    assert ReportSender(store, config).attempt(now=AT).status == "failed"
    registry = CollectorRegistry()
    registry.register(ReportCollector(store, AT + timedelta(days=5)))  # restarted since
    assert registry.get_sample_value("ragmon_report_last_success_timestamp_seconds") == \
        AT.timestamp()


@pytest.mark.parametrize(("kind", "reason"), [
    ("down", r"cannot talk to 127\.0\.0\.1:\d+: Connection refused"),
    ("auth", r"127\.0\.0\.1:\d+ refused the login of 'reports' \(535\); check username and "
             r"password"),
    ("recipient", r"127\.0\.0\.1:\d+ refused every recipient: nobody@example\.org \(550\)"),
])
def test_a_failed_send_is_retried_recorded_and_counted(
    tmp_path: Path, store: Store, certificate: tuple[Path, Path], kind: str, reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config, server = _failing_server(kind, certificate, tmp_path, store)
    try:
        sender = ReportSender(store, config)
        first = sender.attempt(now=AT)
        assert first.status == "failed" and re.fullmatch(reason, first.error or ""), first.error
        assert first.retry_at == AT + timedelta(seconds=1)  # retry.backoff
        # not due yet: nothing is attempted
        assert sender.attempt(now=AT + timedelta(milliseconds=500)).status == "skipped"
        second = sender.attempt(now=AT + timedelta(seconds=1))
        assert second.status == "failed"
        assert second.retry_at == AT + timedelta(seconds=3)  # backoff doubled
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    (row,) = rows(store)
    assert (row.status, row.attempts, row.failures) == ("failed", 2, 2)
    assert re.fullmatch(reason, row.error or "")
    assert metric(store, "ragmon_report_send_failures_total") == 2
    # never sent: the last success is the collector's start (RagmonReportMissing counts
    # from there), and no period is exported as reported
    assert metric(store, "ragmon_report_last_success_timestamp_seconds") == \
        (UNTIL - timedelta(days=30)).timestamp()
    assert metric(store, "ragmon_report_last_period_end_timestamp_seconds") is None
    assert "wrong-password-5d" not in caplog.text + str(row.error)

    # the server is back (or the config fixed): the next due attempt sends it
    with smtp_server(certificate) as (port, mailbox):
        fixed = config_with(tmp_path, report_section(port, certificate[0]), store_url(store))
        third = ReportSender(store, fixed).attempt(now=AT + timedelta(seconds=3))
        assert third.status == "sent", third.error
        mailbox.wait_for(1)
    (row,) = rows(store)
    assert (row.status, row.attempts, row.failures) == ("sent", 3, 2)


def test_retries_end_with_the_attempts_and_the_window(
    tmp_path: Path, store: Store, certificate: tuple[Path, Path]
) -> None:
    config = config_with(tmp_path, report_section(
        free_port(), certificate[0], retry={"max_attempts": 2, "give_up_after": "1h"}),
        store_url(store))
    sender = ReportSender(store, config)
    assert sender.attempt(now=AT).retry_at is not None
    last = sender.attempt(now=AT + timedelta(seconds=1))
    assert last.status == "failed" and last.retry_at is None  # given up: max_attempts
    assert sender.attempt(now=AT + timedelta(minutes=5)).status == "skipped"
    (row,) = rows(store)
    assert row.status == "failed" and row.next_attempt_at is None and row.finished_at

    # a period nobody attempted within give_up_after is not sent late
    late = sender.attempt(now=UNTIL + timedelta(days=7, hours=2))
    assert late.status == "skipped" and len(rows(store)) == 1


def test_a_renderer_that_fails_is_a_failed_attempt_not_a_crash(
    tmp_path: Path, store: Store, certificate: tuple[Path, Path]
) -> None:
    def broken(*_: object, **__: object) -> Rendered:
        raise RuntimeError(f"chart backend exploded near {PASSWORD}")

    config = config_with(tmp_path, report_section(free_port(), certificate[0]), store_url(store))
    outcome = ReportSender(store, config, render=broken).attempt(now=AT)
    assert outcome.status == "failed"
    assert outcome.error == "chart backend exploded near ***"
    (row,) = rows(store)
    assert row.failures == 1 and PASSWORD not in (row.error or "")


def test_the_message_relates_each_chart_to_the_html_part() -> None:
    from ragmon.alerts.report.config import ReportConfig
    from ragmon.alerts.report.model import Image

    rendered = Rendered(
        subject="s", text="plain", html_email='<img src="cid:a@ragmon"><img src="cid:b@ragmon">',
        html_file="", images=[Image("a@ragmon", b"\x89PNG-a", "a"),
                              Image("b@ragmon", b"\x89PNG-b", "b")])
    cfg = ReportConfig.model_validate({"from": SENDER, "to": ["x@example.org"]})
    msg = report_message(rendered, cfg)
    assert [p.get_content_type() for p in msg.walk()] == [
        "multipart/alternative", "text/plain", "multipart/related", "text/html",
        "image/png", "image/png"]
    assert msg["Subject"] == "s"  # no prefix configured
