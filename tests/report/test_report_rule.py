"""The shipped ``RagmonReportMissing`` rule against a real scrape: a real Prometheus server
(Debian's, extracted by the set-up) scrapes a real ``ragmon run`` daemon whose last report
went out 9 days ago and whose mail server is down; the alert fires. The mail server comes
up, the daemon's retry sends the report, and the alert goes back to inactive and stays so.

The rule is the shipped one with only its ``for: 1h`` shortened; the 8-day threshold is
the shipped one. The same daemon serves ``/report`` behind its bearer token.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path

import pytest
import yaml

from ragmon.alerts.report.model import Period
from ragmon.alerts.report.tables import ReportRun
from ragmon.alerts.rule_metrics import RULES_FILE
from ragmon.monitor.http import free_port, http_get
from ragmon.monitor.store import Store

from .delivery_support import RAGMON, report_section, smtp_server, wait_until, write_config

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / ".tools" / "deb" / "root" / "usr" / "bin" / "prometheus"
TOKEN = "report-token-3f9a"
ALERT = "RagmonReportMissing"


def derived_rules(folder: Path) -> Path:
    """The shipped rule, its expression untouched, firing after 1s instead of 1h."""
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    (rule,) = [r for g in groups for r in g["rules"] if r.get("alert") == ALERT]
    assert "ragmon_report_last_success_timestamp_seconds" in rule["expr"]
    assert rule["expr"].endswith("> 8 * 86400")
    assert rule["for"] == "1h"
    path = folder / "report.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "report", "rules": [
        {**rule, "for": "1s"}]}]}))
    return path


def report_state(base: str) -> str:
    """The rule's state in Prometheus: inactive, pending or firing."""
    status, body = http_get(f"{base}/api/v1/rules?type=alert")
    assert status == 200, body[:300]
    rules = [r for g in json.loads(body)["data"]["groups"] for r in g["rules"]]
    (rule,) = [r for r in rules if r["name"] == ALERT]
    return str(rule["state"])


def last_success(base: str) -> float | None:
    query = urllib.parse.urlencode({"query": "ragmon_report_last_success_timestamp_seconds"})
    status, body = http_get(f"{base}/api/v1/query?{query}")
    result = json.loads(body)["data"]["result"] if status == 200 else []
    return float(result[0]["value"][1]) if result else None


def seed_old_report(url: str) -> float:
    """A report sent 9 days ago: the last one before this daemon ran."""
    store = Store(url)
    store.migrate()
    sent = datetime.now(UTC).replace(microsecond=0) - timedelta(days=9)
    period = Period(sent - timedelta(days=7), sent)
    with store.session() as s:
        s.add(ReportRun(report="weekly", period=period.key, since=period.since,
                        until=period.until, status="sent", attempts=1, failures=0,
                        started_at=sent, finished_at=sent, details={}))
    store.close()
    return sent.timestamp()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[int, int, float]]:
    """``ragmon run`` with the report sent every minute to a mail server that is down;
    yields its listen port, the mail server's port and when the seeded report went out."""
    url = f"sqlite:///{tmp_path / 'ragmon.db'}"
    seeded = seed_old_report(url)
    port, smtp_port = free_port(), free_port()
    report = report_section(smtp_port, None, schedule="* * * * *", period="1m", retry={
        "backoff": "1s", "max_backoff": "2s", "max_attempts": 1000, "give_up_after": "59s",
        "lease": "10s", "poll": "1s"}, endpoint={"enabled": True, "token": TOKEN})
    config = write_config(tmp_path, report, url, server={"listen": f"127.0.0.1:{port}"},
                          probes={})
    log = (tmp_path / "daemon.log").open("w")
    proc = subprocess.Popen([str(RAGMON), "run", "--config", str(config)], stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        wait_until("the daemon to be ready",
                   lambda: http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200, 60)
        yield port, smtp_port, seeded
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, (tmp_path / "daemon.log").read_text()[-3000:]
        log.close()
    text = (tmp_path / "daemon.log").read_text()
    assert "smtp-secret" not in text and TOKEN not in text


@pytest.fixture
def prometheus(tmp_path: Path, daemon: tuple[int, int, float]) -> Iterator[str]:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    (folder / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(derived_rules(folder))],
        "scrape_configs": [{"job_name": "ragmon",
                            "static_configs": [{"targets": [f"127.0.0.1:{daemon[0]}"]}]}],
    }))
    web = free_port()
    log = (folder / "prometheus.log").open("w")
    server = subprocess.Popen(
        [str(PROMETHEUS), f"--config.file={folder / 'prometheus.yml'}",
         f"--storage.tsdb.path={folder / 'tsdb'}", f"--web.listen-address=127.0.0.1:{web}"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{web}"
        wait_until("Prometheus to answer", lambda: http_get(base + "/-/ready")[0] == 200, 60)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_report_missing_fires_then_clears_after_a_send(
    daemon: tuple[int, int, float], prometheus: str, promtool: str
) -> None:
    port, smtp_port, seeded = daemon
    assert wait_until("the scrape of the last report", lambda: last_success(prometheus)) \
        == seeded
    wait_until(f"{ALERT} to fire", lambda: report_state(prometheus) == "firing")
    status, body = http_get(f"{prometheus}/api/v1/alerts")
    (alert,) = [a for a in json.loads(body)["data"]["alerts"]
                if a["labels"]["alertname"] == ALERT]
    assert alert["state"] == "firing" and alert["labels"]["severity"] == "warning"

    wait_until("a failed attempt while the mail server is down", lambda: re.search(
        r"^ragmon_report_send_failures_total [1-9]",
        http_get(f"http://127.0.0.1:{port}/metrics")[1], re.M))

    with smtp_server(None, port=smtp_port) as (_, mailbox):  # the mail server is back
        mailbox.wait_for(1, timeout=90)
        status, body = http_get(f"http://127.0.0.1:{port}/metrics")
        names = {line.split("{")[0].split()[0] for line in body.splitlines()
                 if line.startswith("ragmon_report_")}
        assert names == {"ragmon_report_last_success_timestamp_seconds",
                         "ragmon_report_last_period_end_timestamp_seconds",
                         "ragmon_report_send_failures_total"}
        check = subprocess.run([promtool, "check", "metrics"], input=body, text=True,
                               capture_output=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
        wait_until("the new last success in Prometheus",
                   lambda: (last_success(prometheus) or 0) > time.time() - 300)
        wait_until(f"{ALERT} to clear", lambda: report_state(prometheus) == "inactive")
        for _ in range(3):  # it stays inactive over the next evaluations
            time.sleep(1)
            assert report_state(prometheus) == "inactive"


def bearer_get(url: str, token: str | None) -> tuple[int, str, Message]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, resp.read().decode(), resp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers


def test_report_page_needs_its_bearer_token(daemon: tuple[int, int, float]) -> None:
    base = f"http://127.0.0.1:{daemon[0]}/report"
    status, body, headers = bearer_get(base, None)
    assert status == 401 and headers.get("WWW-Authenticate") == 'Bearer realm="ragmon"'
    assert TOKEN not in body
    assert bearer_get(base, "wrong-token")[0] == 401
    assert bearer_get(base, TOKEN[:-1])[0] == 401
    status, body, headers = bearer_get(base, TOKEN)
    assert status == 200 and str(headers.get("Content-Type")).startswith("text/html")
    assert "ragmon weekly report" in body and "cid:" not in body
    status, body, _ = bearer_get(base + "?since=2026-11-01&until=2026-11-08T00:00Z", TOKEN)
    assert status == 200 and "2026-11-01 00:00 to 2026-11-08 00:00 UTC" in body
    status, body, _ = bearer_get(base + "?since=last-week", TOKEN)
    assert (status, body) == (400, "since='last-week' is not a time; write ISO 8601, like "
                                   "2026-11-23 or 2026-11-23T08:00Z\n")
    assert bearer_get(base + "?since=2026-11-08&until=2026-11-01", TOKEN)[:2] == (
        400, "since must be before until\n")
