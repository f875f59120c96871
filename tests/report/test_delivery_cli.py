"""``ragmon report --send`` / ``--dry-run`` / ``--send --scheduled`` against a real SMTP
server, and the report section's bad input as one-line config errors at load."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from ragmon.alerts.report.tables import ReportRun
from ragmon.monitor.app import main
from ragmon.monitor.http import free_port
from ragmon.monitor.store import Store

from .delivery_support import (
    PASSWORD,
    SENDER,
    make_certificate,
    report_section,
    smtp_server,
    store_history,
    write_config,
)

WEEK = ["--since", "2026-11-23T08:00Z", "--until", "2026-11-30T08:00Z"]


@pytest.fixture
def store_url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'ragmon.db'}"
    store = Store(url)
    store.migrate()
    store_history(store)
    store.close()
    yield url


def report_rows(url: str) -> list[tuple[str, str, int]]:
    store = Store(url)
    with store.session() as s:
        rows = [(r.period, r.status, r.attempts) for r in s.scalars(select(ReportRun))]
    store.close()
    return rows


def test_dry_run_prints_what_would_be_sent_and_sends_nothing(
    tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with smtp_server(None) as (port, mailbox):
        config = write_config(tmp_path, report_section(port, None), store_url)
        assert main(["report", "--dry-run", *WEEK, "--config", str(config)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "period:     2026-11-23T08:00Z/2026-11-30T08:00Z"
    assert lines[1].startswith("subject:    [kb] ragmon weekly report 2026-11-23 08:00 to ")
    assert lines[2] == f"from:       {SENDER}"
    assert lines[3] == ("to:         search-team@example.org, "
                        "Knowledge Base <kb-owners@example.org>")
    assert lines[4] == f"server:     127.0.0.1:{port} (none)"
    assert lines[5].startswith("size:       ") and "chart(s)" in lines[5]
    assert "ragmon weekly report, 2026-11-23 08:00 to 2026-11-30 08:00 UTC" in out
    assert mailbox.messages == [] and report_rows(store_url) == []


def test_send_on_demand_claims_nothing(
    tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with smtp_server(None) as (port, mailbox):
        config = write_config(tmp_path, report_section(port, None), store_url)
        assert main(["report", "--send", *WEEK, "--config", str(config)]) == 0
        assert main(["report", "--send", *WEEK, "--config", str(config)]) == 0
        mailbox.wait_for(2)
    assert capsys.readouterr().out.splitlines() == [
        "report 2026-11-23T08:00Z/2026-11-30T08:00Z: sent to 2 recipient(s) (on demand; the "
        "scheduled report is not affected)"] * 2
    assert report_rows(store_url) == []  # the daemon still sends the scheduled one


def test_send_scheduled_goes_through_the_claim_once(
    tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with smtp_server(None) as (port, mailbox):
        config = write_config(tmp_path, report_section(port, None), store_url)
        assert main(["report", "--send", "--scheduled", "--config", str(config)]) == 0
        assert main(["report", "--send", "--scheduled", "--config", str(config)]) == 0
        mailbox.wait_for(1)
    first, second = capsys.readouterr().out.splitlines()
    assert first.endswith(": sent as the scheduled report")
    assert ": not sent: already sent at " in second
    ((_, status, attempts),) = report_rows(store_url)
    assert (status, attempts) == ("sent", 1) and len(mailbox.messages) == 1


def test_send_to_a_server_that_is_down_is_one_line(
    tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, _ = make_certificate(tmp_path)
    port = free_port()
    config = write_config(tmp_path, report_section(port, cert), store_url)
    assert main(["report", "--send", *WEEK, "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err == (f"ragmon report: error: report 2026-11-23T08:00Z/2026-11-30T08:00Z not "
                   f"sent: cannot talk to 127.0.0.1:{port}: Connection refused\n")
    assert PASSWORD not in err


def test_a_ca_file_that_is_not_a_certificate_is_one_line(
    tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cert = tmp_path / "ca.pem"
    cert.write_text("not a certificate\n")
    port = free_port()
    config = write_config(tmp_path, report_section(port, cert), store_url)
    assert main(["report", "--send", *WEEK, "--config", str(config)]) == 1
    assert capsys.readouterr().err == (
        f"ragmon report: error: report 2026-11-23T08:00Z/2026-11-30T08:00Z not sent: "
        f"127.0.0.1:{port}: ca_file {str(cert)!r} holds no usable CA certificate "
        "(NO_CERTIFICATE_OR_CRL_FOUND); give a PEM file\n")


def test_send_without_a_mail_server_is_a_usage_error(
    tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, {"from": SENDER}, store_url)
    assert main(["report", "--send", "--config", str(config)]) == 2
    assert capsys.readouterr().err == (
        f"ragmon report: error: --send needs report.smtp, report.to in {config}\n")


@pytest.mark.parametrize(("report", "message"), [
    ({"to": ["team@example.org", "team.example.org"]},
     "report.to[1]: not an email address (An email address must have an @-sign), got "
     "'team.example.org'"),
    ({"from": "ragmon@"},
     "report.from: not an email address (There must be something after the @-sign), got "
     "'ragmon@'"),
    ({"to": ["Team <team@example.org"]},
     "report.to[0]: not an email address (write name@domain, or Name <name@domain>), got "
     "'Team <team@example.org'"),
    ({"enabled": True, "from": "ragmon@example.org", "to": ["t@example.org"]},
     "report.smtp: an enabled report needs 'smtp'"),
    ({"schedule": "every monday"},
     "report.schedule: not a cron expression (Wrong number of fields; got 2, expected 5); "
     "write five fields in UTC, like '0 8 * * mon', got 'every monday'"),
    ({"endpoint": {"enabled": True}},
     "report.endpoint.token: /report serves query texts: set 'token' (a secret, like "
     "{env: RAGMON_REPORT_TOKEN})"),
    ({"smtp": {"host": "mail", "password": "pw-8c1", "timeout": "10m"}},
     "report.smtp.timeout: is more than half of 'retry.lease' (900s): a send could outlive "
     "its claim and be sent twice; lower it or raise the lease"),
])
def test_bad_report_config_is_one_line_at_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], report: dict[str, object],
    message: str,
) -> None:
    config = tmp_path / "ragmon.yaml"
    config.write_text(yaml.safe_dump({"report": report}))
    assert main(["check-config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"error: {config}: {message}\n" in err
    assert "pw-8c1" not in err
