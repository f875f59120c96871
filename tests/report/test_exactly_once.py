"""Exactly once per period, with independent processes sharing one real store: two replicas
racing for the same period send one email, not two (both attempted: each prints its
outcome); a replica killed between claiming and sending leaves a claim that is taken over
and sent once its lease ends; a restart after sending sends nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pytest
from sqlalchemy import select

from ragmon.alerts.report.delivery import ReportSender
from ragmon.alerts.report.tables import ReportRun
from ragmon.monitor.app import load_config
from ragmon.monitor.http import free_port, http_get
from ragmon.monitor.store import Store

from .delivery_support import (
    RAGMON,
    UNTIL,
    report_section,
    smtp_server,
    store_history,
    wait_until,
    write_config,
)

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("claim_process.py")
ROUNDS = 4
LEASE = 30.0


class Replica:
    """One replica process (tests/report/claim_process.py)."""

    def __init__(self, config: Path, name: str):
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), str(config), name], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)})
        assert self._line() == "ready"

    def _line(self) -> str:
        out: IO[str] | None = self.proc.stdout
        assert out is not None
        line = out.readline()
        if not line:
            assert self.proc.stderr is not None
            raise AssertionError(f"{self.name} died: {self.proc.stderr.read()[-2000:]}")
        return line.strip()

    def tell(self, command: str, at: datetime) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{command} {at.isoformat()}\n")
        self.proc.stdin.flush()

    def answer(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self._line())
        return data

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.communicate(timeout=10)  # reaps it and closes the pipes

    def stop(self) -> None:
        """End of input: the replica closes its store and exits."""
        self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0


@pytest.fixture
def replicas() -> Iterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for replica in started:
        if replica.proc.returncode is None:
            replica.kill()


def report_rows(url: str) -> list[tuple[str, str, int, int, str | None]]:
    store = Store(url)
    try:
        with store.session() as s:
            return [(r.period, r.status, r.attempts, r.failures, r.claimed_by) for r in
                    s.scalars(select(ReportRun).order_by(ReportRun.until))]
    finally:
        store.close()


def prepared_store(url: str) -> None:
    store = Store(url)
    store.migrate()
    store_history(store)
    store.close()


def test_two_replicas_on_postgres_send_each_period_once(
    tmp_path: Path, postgres_url: str, replicas: list[Replica]
) -> None:
    prepared_store(postgres_url)
    with smtp_server(None) as (port, mailbox):
        config = write_config(tmp_path, report_section(port, None), postgres_url)
        replicas += [Replica(config, "replica-a"), Replica(config, "replica-b")]
        winners = []
        for week in range(ROUNDS):
            at = UNTIL + timedelta(weeks=week, minutes=1)
            for replica in replicas:  # both at once: each races for the same period
                replica.tell("attempt", at)
            outcomes = [replica.answer() for replica in replicas]
            assert sorted(o["status"] for o in outcomes) == ["sent", "skipped"], outcomes
            assert len({o["period"] for o in outcomes}) == 1
            winners.append(next(o["replica"] for o in outcomes if o["status"] == "sent"))
        mailbox.wait_for(ROUNDS)
    assert len(mailbox.messages) == ROUNDS
    subjects = sorted(str(m["Subject"]) for _, m in mailbox.messages)
    assert len(set(subjects)) == ROUNDS  # one email per period, each period once
    rows = report_rows(postgres_url)
    assert [(status, attempts) for _, status, attempts, _, _ in rows] == [("sent", 1)] * ROUNDS
    assert [by for *_, by in rows] == winners


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_claim_left_by_a_killed_replica_is_sent_once_its_lease_ends(
    tmp_path: Path, request: pytest.FixtureRequest, replicas: list[Replica], backend: str,
) -> None:
    url = f"sqlite:///{tmp_path / 'ragmon.db'}" if backend == "sqlite" else \
        str(request.getfixturevalue("postgres_url"))
    prepared_store(url)
    store = Store(url)
    at = UNTIL + timedelta(minutes=1)
    with smtp_server(None) as (port, mailbox):
        config = write_config(tmp_path, report_section(port, None,
                                                       retry={"lease": f"{LEASE:g}s"}), url)
        crashing = Replica(config, "crashing")
        replicas.append(crashing)
        crashing.tell("claim", at)
        assert crashing.answer() == {"replica": "crashing", "claimed": True}
        crashing.kill()  # died after claiming, before sending
        assert report_rows(url)[0][1:] == ("claimed", 1, 0, "crashing")

        # another replica (in this process) polls while the lease holds, then after it
        survivor = ReportSender(store, load_config(config, environ={}), replica="survivor")
        assert survivor.attempt(now=at + timedelta(seconds=LEASE / 2)).status == "skipped"
        assert survivor.attempt(now=at + timedelta(seconds=LEASE + 1)).status == "sent"
        mailbox.wait_for(1)

        # a restart after sending: a new replica finds the period sent
        restarted = ReportSender(store, load_config(config, environ={}), replica="restarted")
        assert restarted.attempt(now=at + timedelta(seconds=LEASE + 60)).status == "skipped"
    store.close()
    assert len(mailbox.messages) == 1
    assert report_rows(url)[0][1:] == ("sent", 2, 0, "survivor")


def test_two_ragmon_run_daemons_on_one_postgres_send_one_email(
    tmp_path: Path, postgres_url: str
) -> None:
    """Two real daemons started together, each polling every second for a due period."""
    prepared_store(postgres_url)
    logs, procs = [], []
    with smtp_server(None) as (smtp_port, mailbox):
        report = report_section(smtp_port, None, schedule="* * * * *", period="1m", retry={
            "give_up_after": "59s", "lease": "20s", "poll": "1s"})
        for name in ("a", "b"):
            folder = tmp_path / name
            folder.mkdir()
            port = free_port()
            config = write_config(folder, report, postgres_url, probes={},
                                  server={"listen": f"127.0.0.1:{port}"},
                                  logging={"level": "debug"})
            logs.append(folder / "daemon.log")
            out = logs[-1].open("w")
            procs.append((subprocess.Popen([str(RAGMON), "run", "--config", str(config)],
                                           stdout=out, stderr=subprocess.STDOUT), out, port))
        try:
            for _, _, port in procs:
                wait_until("the daemon to be ready",
                           lambda p=port: http_get(f"http://127.0.0.1:{p}/readyz")[0] == 200)
            (_, message), = mailbox.wait_for(1, timeout=90)
            period = report_rows(postgres_url)[0][0]
            # each daemon went for that period: one sent it, the other found it taken
            wait_until("both daemons to attempt the period", lambda: all(
                f"report {period}: " in log.read_text() for log in logs), 30)
        finally:
            for proc, out, _ in procs:
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=60) == 0
                out.close()
    texts = [log.read_text() for log in logs]
    winners = [i for i, t in enumerate(texts) if f"report {period}: sent to 2 recipient" in t]
    assert len(winners) == 1, texts
    assert f"report {period}: not claimed by " in texts[1 - winners[0]]
    assert sum(m["Subject"] == message["Subject"] for _, m in mailbox.messages) == 1
    rows = report_rows(postgres_url)
    assert len({p for p, *_ in rows}) == len(rows)  # one row per period
    assert all((status, attempts) == ("sent", 1) for _, status, attempts, _, _ in rows)
    assert len(mailbox.messages) == len(rows)


def test_a_sent_report_recorded_late_is_not_sent_again(
    tmp_path: Path, postgres_url: str
) -> None:
    """The store is blocked while the mail server accepts the message (another client holds
    ``report_runs`` locked past the store's statement timeout): recording "sent" fails at
    first, and must still land before the claim's lease ends, or the replica that takes the
    claim over sends the same period again."""
    import threading

    import psycopg
    from sqlalchemy.engine import make_url

    prepared_store(postgres_url)
    plain = make_url(postgres_url).set(drivername="postgresql")
    locker = psycopg.connect(plain.render_as_string(hide_password=False))
    store, other = Store(postgres_url, statement_timeout=1.0), Store(postgres_url)
    at = UNTIL + timedelta(minutes=1)
    try:
        with smtp_server(None) as (port, mailbox):
            config = load_config(write_config(tmp_path, report_section(
                port, None, retry={"lease": f"{LEASE:g}s"}), postgres_url), environ={})
            accept = mailbox.handle_DATA

            async def handle_data(server: Any, session: Any, envelope: Any) -> str:
                locker.execute("LOCK TABLE report_runs IN ACCESS EXCLUSIVE MODE")
                threading.Timer(2.5, locker.commit).start()
                return await accept(server, session, envelope)

            mailbox.handle_DATA = handle_data  # type: ignore[method-assign]
            sent = ReportSender(store, config, replica="first").attempt(now=at)
            assert sent.status == "sent", sent.error
            mailbox.wait_for(1)
            later = ReportSender(other, config, replica="second")
            assert later.attempt(now=at + timedelta(seconds=LEASE + 1)).status == "skipped"
    finally:
        locker.close()
        store.close()
        other.close()
    assert len(mailbox.messages) == 1
    assert report_rows(postgres_url)[0][1:4] == ("sent", 1, 0)
