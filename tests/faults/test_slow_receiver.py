"""A receiver that accepts a notification and then answers one byte at a time.

Found in a trial: a webhook that took the POST and then trickled its answer. Every read
got a byte before the read timeout, so the send never ended; each time the lease ran out the
same notification was claimed and POSTed again, the shared send threads filled up with
copies, and an email resolve notice to a healthy server waited minutes and was then sent
eight times. What must hold, against real servers on 127.0.0.1 and both stores:

- every send ends by its deadline (``delivery.timeout``, at most half the lease), however
  the bytes trickle: webhook, Slack, Alertmanager and email alike;
- a notification is never claimed again while a send of it runs, so each is POSTed once
  per recorded attempt;
- a completion whose claim was taken meanwhile changes nothing, and is counted;
- a stuck sink holds up only its own sends: the email goes out at once.
"""

from __future__ import annotations

import email
import json
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select as sql_select
from sqlalchemy import update

from ragmon.alerts.cli import test_notification as sample_notification
from ragmon.alerts.delivery import SENDS_PER_SINK, DeliveryWorker
from ragmon.alerts.engine import AlertEngine
from ragmon.alerts.metrics import AlertStats
from ragmon.alerts.sinks import build_sink
from ragmon.alerts.tables import AlertNotification as Row
from ragmon.monitor.errors import SinkError
from ragmon.monitor.http import free_port
from ragmon.monitor.store import Store

from ..alerts.alert_support import T0, alerts_config, minutes, recall_run

TRICKLE = 0.1  # seconds between two bytes of an answer: well under every read timeout
TIMEOUT, LEASE = 0.5, 1.0  # delivery.timeout and delivery.lease of these tests
SLACK = 0.5  # scheduling and teardown allowance on a busy machine
# About 8 s to trickle in full: longer than the lease, far longer than the timeout.
HTTP_ANSWER = (b"HTTP/1.1 200 OK\r\nX-Padding: " + b"." * 40
               + b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
SMTP_GREETING = b"220 " + b"." * 60 + b" ESMTP slow\r\n"
RULE = {"probe": "docs-recall", "field": "recall_ratio", "match": {"k": 10, "mode": "live"},
        "condition": "< 0.8"}
DELIVERY = {"timeout": f"{TIMEOUT * 1000:g}ms", "lease": f"{LEASE:g}s", "poll": "50ms",
            "backoff": "1h", "max_backoff": "1h"}  # an attempt that timed out waits: no retry


@dataclass
class Exchange:
    """One connection to the trickling server, as the server saw it."""

    opened: float
    body: bytes = b""
    gave_up: float | None = None  # when the client closed the connection mid-answer
    ended: float | None = None

    @property
    def seconds(self) -> float:
        return (self.gave_up or self.ended or time.monotonic()) - self.opened


@dataclass
class TrickleServer:
    """A real TCP server on 127.0.0.1: it reads an HTTP request (``http``) or nothing (an SMTP
    greeting comes first), sends ``fast`` at once, then ``answer`` one byte per TRICKLE."""

    answer: bytes
    fast: bytes = b""
    http: bool = True
    exchanges: list[Exchange] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _listener: socket.socket = field(default_factory=socket.socket)

    def start(self) -> TrickleServer:
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.05)
        self._spawn(self._accept)
        return self

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(timeout=10)
        self._listener.close()

    def wait_for(self, check: Callable[[], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        exchange = Exchange(time.monotonic())
        with conn:
            conn.settimeout(5.0)
            if self.http:
                exchange.body = _read_request(conn)
            self.exchanges.append(exchange)
            conn.sendall(self.fast)
            for byte in self.answer:
                if self._stop.is_set():
                    return
                readable, _, _ = select.select([conn], [], [], TRICKLE)
                try:
                    if readable and conn.recv(1024) == b"":
                        raise ConnectionResetError  # the client closed its end
                    conn.sendall(bytes([byte]))
                except OSError:
                    exchange.gave_up = time.monotonic()
                    return
            exchange.ended = time.monotonic()


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        body += conn.recv(4096)
    return body


@pytest.fixture
def trickling() -> Iterator[TrickleServer]:
    server = TrickleServer(HTTP_ANSWER).start()
    yield server
    server.stop()


class Mailbox:
    """An aiosmtpd handler that notes when each message arrived."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        subject = " ".join(email.message_from_bytes(envelope.content)["Subject"].split())
        self.messages.append((time.monotonic(), subject.split("]")[0].strip("[")))
        return "250 OK"

    def first(self, tag: str) -> float | None:
        return next((at for at, t in self.messages if t == tag), None)


@pytest.fixture
def mail() -> Iterator[tuple[int, Mailbox]]:
    """A real SMTP server (aiosmtpd), plain and without AUTH: the healthy sink."""
    mailbox = Mailbox()
    port = free_port()  # aiosmtpd cannot bind port 0
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, mailbox
    controller.stop()


def mail_sink(port: int) -> dict[str, Any]:
    return {"kind": "email", "host": "127.0.0.1", "port": port, "security": "none",
            "from": "ragmon@example.org", "to": ["oncall@example.org"]}


def pump(worker: DeliveryWorker, seconds: float, until: Callable[[], bool] | None = None) -> None:
    """What the daemon's scheduler does: a delivery pass every poll, never waiting on sends."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (until and until()):
        worker.deliver_due()
        time.sleep(0.05)


def test_a_trickling_webhook_is_posted_once_per_attempt_and_never_delays_email(
    store: Store, trickling: TrickleServer, mail: tuple[int, Mailbox]
) -> None:
    port, mailbox = mail
    cfg = alerts_config({"delivery": DELIVERY, "rules": {"RecallLow": RULE},
                         "sinks": {"hook": {"kind": "webhook", "url": trickling.url},
                                   "mail": mail_sink(port)}})
    stats = AlertStats()
    engine, worker = AlertEngine(cfg, store, stats), DeliveryWorker(store, cfg, stats)
    try:
        fired = time.monotonic()
        engine.evaluate("docs-recall", recall_run(0.5, T0))
        # Long enough for the lease to run out three times while the first POST trickles.
        pump(worker, 3.5)
        resolved = time.monotonic()
        engine.evaluate("docs-recall", recall_run(0.9, T0 + minutes(5)))
        pump(worker, 2.5, until=lambda: mailbox.first("RESOLVED") is not None)
    finally:
        trickling.stop()  # ends any send still trickling, so that the worker can stop
        worker.close()
    with store.session() as s:
        outbox = {(r.sink, r.event): (r.status, r.attempts, r.last_error)
                  for r in s.scalars(sql_select(Row))}
    firing_mail, resolved_mail = mailbox.first("FIRING"), mailbox.first("RESOLVED")
    summary = {
        "POSTs per notification": dict(Counter(json.loads(x.body)["status"]
                                               for x in trickling.exchanges if x.body)),
        "emails": dict(Counter(tag for _, tag in mailbox.messages)),
        "email firing delay (s)": firing_mail and round(firing_mail - fired, 2),
        "email resolved delay (s)": resolved_mail and round(resolved_mail - resolved, 2),
        "longest webhook send (s)": round(max(x.seconds for x in trickling.exchanges), 2),
        "outbox": outbox,
    }
    print(summary)
    # The webhook got the firing notice once: its one attempt, ended by the deadline. The
    # retry waits for the backoff; the alert resolved meanwhile, so the notice is dropped,
    # and the webhook, which never took the firing notice, is not told of the resolve.
    assert summary["POSTs per notification"] == {"firing": 1}, summary
    assert all(x.gave_up is not None and x.seconds <= TIMEOUT + SLACK
               for x in trickling.exchanges), summary
    status, attempts, error = outbox.pop(("hook", "firing"))
    assert (status, attempts) == ("superseded", 1), summary
    assert error is not None and error.endswith("timed out"), summary
    assert outbox == {("mail", "firing"): ("sent", 1, None),
                      ("mail", "resolved"): ("sent", 1, None)}, summary
    # The stuck webhook never held up the email: each went out once, at once.
    assert summary["emails"] == {"FIRING": 1, "RESOLVED": 1}, summary
    assert firing_mail is not None and firing_mail - fired < 1.5, summary
    assert resolved_mail is not None and resolved_mail - resolved < 1.5, summary
    assert sum(stats.lost_claims.values()) == 0, summary


def test_a_stuck_sink_claims_only_what_its_own_threads_can_send(
    store: Store, trickling: TrickleServer
) -> None:
    """Six notifications to a stuck receiver: four are claimed and sent at once (the sink's
    threads), the other two stay pending, unclaimed, until a thread is free; so no lease
    runs out while a claimed row waits in a queue, and each is POSTed once."""
    cfg = alerts_config({"delivery": DELIVERY, "rules": {f"RecallLow{i}": RULE for i in range(6)},
                         "sinks": {"hook": {"kind": "webhook", "url": trickling.url}}})
    engine, worker = AlertEngine(cfg, store), DeliveryWorker(store, cfg)
    claimed_at_once = []
    try:
        engine.evaluate("docs-recall", recall_run(0.5, T0))

        def all_sent_once() -> bool:
            with store.session() as s:
                claimed_at_once.append(len(s.scalars(
                    sql_select(Row.id).where(Row.status == "sending")).all()))
            return len(trickling.exchanges) == 6 and all(x.gave_up for x in trickling.exchanges)

        pump(worker, 3 * TIMEOUT + 2 * SLACK, until=all_sent_once)
    finally:
        trickling.stop()
        worker.close()
    opened = sorted(x.opened for x in trickling.exchanges)
    assert max(claimed_at_once) == SENDS_PER_SINK, claimed_at_once
    assert opened[4] - opened[3] >= TIMEOUT - 0.1, opened  # the fifth waited for a thread
    assert Counter(json.loads(x.body)["alert"]["name"] for x in trickling.exchanges) == {
        f"RecallLow{i}": 1 for i in range(6)}


@pytest.mark.parametrize("taken_by", ["another-replica", "this-replica"])
def test_a_completion_that_lost_its_claim_changes_nothing(
    store: Store, trickling: TrickleServer, taken_by: str
) -> None:
    """A send's result is recorded only under the claim it was made with. Here the claim is
    taken while the POST trickles (as after a stall longer than the lease): by another
    replica, or by this one claiming the row again."""
    cfg = alerts_config({"delivery": DELIVERY, "rules": {"RecallLow": RULE},
                         "sinks": {"hook": {"kind": "webhook", "url": trickling.url}}})
    stats = AlertStats()
    engine = AlertEngine(cfg, store, stats)
    worker = DeliveryWorker(store, cfg, stats, replica="this-replica")
    try:
        engine.evaluate("docs-recall", recall_run(0.5, T0))
        assert worker.run_once(wait_for_sends=False) == 1
        assert trickling.wait_for(lambda: len(trickling.exchanges) == 1)
        until = datetime.now(UTC) + timedelta(hours=1)
        with store.session() as s:
            s.execute(update(Row).values(claimed_by=taken_by, claimed_until=until))
        # The send ends by its deadline, then tries to record its result.
        ended = trickling.wait_for(lambda: trickling.exchanges[0].gave_up is not None)
    finally:
        trickling.stop()
        worker.close()
    assert ended, f"the send went on for {trickling.exchanges[0].seconds:.1f}s"
    with store.session() as s:
        (row,) = s.scalars(sql_select(Row))
        assert (row.status, row.claimed_by, row.attempts, row.last_error) == (
            "sending", taken_by, 0, None)
        assert row.claimed_until == until
    assert stats.lost_claims == {"hook": 1}
    assert sum(stats.notifications.values()) == 0


def _sink(kind: str, url: str) -> Any:
    sink = {"webhook": {"kind": "webhook", "url": url},
            "slack": {"kind": "slack", "url": f"{url}/services/T0/B0/x"},
            "alertmanager": {"kind": "alertmanager", "url": url}}[kind]
    cfg = alerts_config({"sinks": {"s": sink}})
    return build_sink("s", cfg.sinks["s"], TIMEOUT)


@pytest.mark.parametrize("kind", ["webhook", "slack", "alertmanager"])
def test_an_http_sink_stops_a_trickling_answer_at_its_deadline(
    kind: str, trickling: TrickleServer
) -> None:
    started = time.monotonic()
    with pytest.raises(SinkError, match="timed out$"):
        _sink(kind, trickling.url).send(sample_notification())
    assert time.monotonic() - started <= TIMEOUT + SLACK
    assert len(trickling.exchanges) == 1 and trickling.exchanges[0].body


def test_an_earlier_deadline_from_the_worker_wins() -> None:
    server = TrickleServer(HTTP_ANSWER).start()
    try:
        started = time.monotonic()
        with pytest.raises(SinkError, match="timed out$"):
            _sink("webhook", server.url).send(sample_notification(), deadline=started + 0.2)
        assert time.monotonic() - started <= 0.2 + SLACK
    finally:
        server.stop()


def test_an_accepted_notification_whose_body_trickles_counts_as_sent() -> None:
    """A 2xx status means the receiver took it; a trickling body past the deadline must not
    make it a failure (a retry would send it twice)."""
    server = TrickleServer(b"." * 80, fast=b"HTTP/1.1 200 OK\r\nContent-Length: 80\r\n\r\n")
    server.start()
    try:
        started = time.monotonic()
        _sink("webhook", server.url).send(sample_notification())
        assert time.monotonic() - started <= TIMEOUT + SLACK
    finally:
        server.stop()


def test_the_email_sink_stops_a_trickling_smtp_server_at_its_deadline() -> None:
    server = TrickleServer(SMTP_GREETING, http=False).start()
    try:
        cfg = alerts_config({"sinks": {"mail": mail_sink(server.port)}})
        sink = build_sink("mail", cfg.sinks["mail"], TIMEOUT)
        started = time.monotonic()
        with pytest.raises(SinkError, match="timed out$"):
            sink.send(sample_notification())
        assert time.monotonic() - started <= TIMEOUT + SLACK
    finally:
        server.stop()
