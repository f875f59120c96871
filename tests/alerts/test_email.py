"""The email sink against a real SMTP server (aiosmtpd) that requires STARTTLS and AUTH:
the message arrives with the alert in it; a wrong password is a clear error without it."""

from __future__ import annotations

import email
import subprocess
import time
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from alert_support import FAST_DELIVERY, T0, alerts_config, minutes, recall_run
from sqlalchemy import select

from ragmon.alerts.delivery import DeliveryWorker
from ragmon.alerts.engine import AlertEngine
from ragmon.alerts.sinks import build_sink
from ragmon.alerts.tables import AlertNotification
from ragmon.monitor.errors import SinkError
from ragmon.monitor.http import free_port
from ragmon.monitor.store import Store

USER, PASSWORD = "ragmon", "smtp-pass-4e1b"


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 OK"


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(), PASSWORD.encode())
    return AuthResult(success=True) if ok else AuthResult(success=False, handled=False)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the sink trusts it through ``ca_file``)."""
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    return d / "cert.pem", d / "key.pem"


@pytest.fixture
def smtp(certificate: tuple[Path, Path]) -> Iterator[tuple[int, Mailbox]]:
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    mailbox = Mailbox()
    port = free_port()  # aiosmtpd cannot bind port 0
    controller = Controller(
        mailbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
        auth_required=True, authenticator=authenticate,
    )
    controller.start()
    yield port, mailbox
    controller.stop()


def email_sink(port: int, cert: Path, password: str = PASSWORD) -> dict[str, Any]:
    return {"kind": "email", "host": "127.0.0.1", "port": port, "username": USER,
            "password": password, "from": "ragmon@example.org",
            "to": ["search-team@example.org", "oncall@example.org"], "ca_file": str(cert)}


def test_firing_and_resolved_mail_over_starttls_with_auth(
    tmp_path: Path, smtp: tuple[int, Mailbox], certificate: tuple[Path, Path]
) -> None:
    port, mailbox = smtp
    store = Store(f"sqlite:///{tmp_path / 'ragmon.db'}")
    store.migrate()
    cfg = alerts_config({"delivery": FAST_DELIVERY,
                         "sinks": {"mail": email_sink(port, certificate[0])},
                         "rules": {"RecallLow": {
                             "probe": "docs-recall", "field": "recall_ratio",
                             "match": {"k": 10, "mode": "live"}, "condition": "< 0.8",
                             "summary": "recall@10 is {{ value }}",
                             "description": "verdict: {{ details.verdict }}"}}})
    engine, worker = AlertEngine(cfg, store), DeliveryWorker(store, cfg)

    def deliver() -> None:
        deadline = time.monotonic() + 15
        while True:
            worker.run_once()
            with store.session() as s:
                if all(st == "sent" for st in s.scalars(select(AlertNotification.status))):
                    return
            assert time.monotonic() < deadline
            time.sleep(0.05)

    engine.evaluate("docs-recall", recall_run(0.5, T0, details={"verdict": "index"}))
    deliver()
    engine.evaluate("docs-recall", recall_run(0.9, T0 + minutes(5)))
    deliver()
    assert len(mailbox.messages) == 2
    (to, firing), (_, resolved) = mailbox.messages
    assert sorted(to) == ["oncall@example.org", "search-team@example.org"]
    assert firing["Subject"] == "[FIRING] RecallLow: recall@10 is 0.5"
    assert firing["From"] == "ragmon@example.org"
    text = firing.get_payload()[0].get_payload(decode=True).decode()
    assert "verdict: index" in text and "k: 10" in text
    assert resolved["Subject"].startswith("[RESOLVED] RecallLow: ")
    store.close()


def test_wrong_password_is_a_clear_error_without_the_password(
    smtp: tuple[int, Mailbox], certificate: tuple[Path, Path]
) -> None:
    port, mailbox = smtp
    cfg = alerts_config({"sinks": {"mail": email_sink(port, certificate[0], "wrong-pw-77")}})
    sink = build_sink("mail", cfg.sinks["mail"], 5.0)
    from ragmon.alerts.cli import test_notification

    with pytest.raises(SinkError) as info:
        sink.send(test_notification())
    assert str(info.value) == (
        f"sink 'mail' (email): 127.0.0.1:{port} refused the login of 'ragmon' (535); "
        "check username and password")
    assert "wrong-pw-77" not in repr(info.value.__dict__) + str(info.value)
    assert mailbox.messages == []


def test_untrusted_certificate_is_refused(smtp: tuple[int, Mailbox], tmp_path: Path) -> None:
    port, mailbox = smtp
    cfg = alerts_config({"sinks": {"mail": {**email_sink(port, Path("x")), "ca_file": None}}})
    sink = build_sink("mail", cfg.sinks["mail"], 5.0)
    from ragmon.alerts.cli import test_notification

    with pytest.raises(SinkError) as info:
        sink.send(test_notification())
    assert str(info.value).startswith(f"sink 'mail' (email): cannot talk to 127.0.0.1:{port}: ")
    assert mailbox.messages == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_implicit_tls(certificate: tuple[Path, Path]) -> None:
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    mailbox = Mailbox()
    port = free_port()
    # The whole session is TLS; aiosmtpd only knows about STARTTLS, so it is told not to ask.
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, ssl_context=context,
                            auth_required=True, auth_require_tls=False,
                            authenticator=authenticate)
    controller.start()
    try:
        cfg = alerts_config({"sinks": {"mail": {**email_sink(port, certificate[0]),
                                                "security": "tls"}}})
        from ragmon.alerts.cli import test_notification

        build_sink("mail", cfg.sinks["mail"], 5.0).send(test_notification())
    finally:
        controller.stop()
    ((_, message),) = mailbox.messages
    assert message["Subject"] == "[FIRING] RagmonTestNotification: Test notification from ragmon"
