"""What the delivery tests share: a real SMTP server (aiosmtpd on 127.0.0.1, STARTTLS and
AUTH with a self-signed certificate made here), stored recall history with known numbers,
and a config with a ``report:`` section pointing at the server."""

from __future__ import annotations

import email
import email.policy
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from ragmon.monitor.app import validate_raw
from ragmon.monitor.config import RootConfig
from ragmon.monitor.http import free_port
from ragmon.monitor.store import RunRecord, Store

#: The console script of this install (``ragmon run`` in the daemon tests).
RAGMON = Path(sys.executable).with_name("ragmon")
USER, PASSWORD = "reports", "smtp-secret-91c7"
SENDER = "ragmon@example.org"
TO = ["search-team@example.org", "Knowledge Base <kb-owners@example.org>"]
REFUSED = "nobody@example.org"
#: The end of the period the tests report on (a Monday 08:00 UTC).
UNTIL = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
#: Live recall@10 of the stored runs, oldest first (one more run failed).
LIVE_RECALL = (0.75, 0.5, 0.875)
EXACT_RECALL = 0.9375


class Mailbox:
    """Collects what the server accepted; refuses ``REFUSED`` as a recipient."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.lock = threading.Lock()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any,  # noqa: N802
                          address: str, rcpt_options: list[str]) -> str:
        if address == REFUSED:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), message))
        return "250 OK"

    def wait_for(self, n: int, timeout: float = 20.0) -> list[tuple[list[str], EmailMessage]]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < n:
            assert time.monotonic() < deadline, f"{len(self.messages)} of {n} messages arrived"
            time.sleep(0.05)
        return list(self.messages)


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                 data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(), PASSWORD.encode())
    return AuthResult(success=True) if ok else AuthResult(success=False, handled=False)


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the sender trusts it through ``ca_file``)."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem"),
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    return folder / "cert.pem", folder / "key.pem"


@contextmanager
def smtp_server(certificate: tuple[Path, Path] | None,
                port: int | None = None) -> Iterator[tuple[int, Mailbox]]:
    """aiosmtpd on 127.0.0.1: STARTTLS and AUTH required when given a certificate, else
    plain and open."""
    import ssl

    mailbox = Mailbox()
    port = port or free_port()  # aiosmtpd cannot bind port 0
    kwargs: dict[str, Any] = {}
    if certificate is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(certificate[0]), str(certificate[1]))
        kwargs = {"tls_context": context, "require_starttls": True, "auth_required": True,
                  "authenticator": authenticate}
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield port, mailbox
    finally:
        controller.stop()


def report_section(port: int, cert: Path | None, **overrides: Any) -> dict[str, Any]:
    smtp: dict[str, Any] = {"host": "127.0.0.1", "port": port, "timeout": "5s"}
    if cert is not None:
        smtp.update(username=USER, password={"file": "smtp-password"}, ca_file=str(cert))
    else:
        smtp.update(security="none")
    section: dict[str, Any] = {
        "enabled": True, "from": SENDER, "to": TO, "subject_prefix": "[kb]", "smtp": smtp,
        "retry": {"backoff": "1s", "max_backoff": "4s", "max_attempts": 5, "lease": "30s",
                  "give_up_after": "1h", "poll": "1s"},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(section.get(key), dict):
            section[key] = {**section[key], **value}
        else:
            section[key] = value
    return section


def config_with(folder: Path, report: dict[str, Any], store_url: str,
                password: str = PASSWORD) -> RootConfig:
    """A config with one recall probe (its history is what the report reads) and ``report``."""
    raw = raw_config(folder, report, store_url, password)
    return validate_raw(raw, str(folder / "ragmon.yaml"), folder)


def write_config(folder: Path, report: dict[str, Any], store_url: str,
                 password: str = PASSWORD, **extra: Any) -> Path:
    """The same config as a file (for daemons and other processes)."""
    import yaml

    path = folder / "ragmon.yaml"
    path.write_text(yaml.safe_dump({**raw_config(folder, report, store_url, password),
                                    **extra}))
    return path


def raw_config(folder: Path, report: dict[str, Any], store_url: str,
               password: str = PASSWORD) -> dict[str, Any]:
    raw = {
        "store": {"url": store_url},
        "targets": {"docs": {"kind": "faiss", "path": "index.faiss"}},
        "golden_sets": {"g": {"path": "golden.jsonl"}},
        "probes": {"docs-recall": {"kind": "recall", "target": "docs", "golden_set": "g"}},
        "report": report,
    }
    (folder / "smtp-password").write_text(password + "\n")
    return raw


def store_history(store: Store, until: datetime = UNTIL) -> None:
    """Three successful recall runs and one failed one in the week before ``until``."""
    for i, live in enumerate(LIVE_RECALL):
        at = until - timedelta(days=5 - i)
        store.record_run(RunRecord(
            probe="docs-recall", kind="recall", target="docs", started_at=at,
            finished_at=at + timedelta(seconds=2), status="ok",
            details={"verdict_k": 10, "verdict": "healthy"},
            values=[("recall_ratio", {"k": 10, "mode": "live"}, live),
                    ("recall_ratio", {"k": 10, "mode": "exact"}, EXACT_RECALL),
                    ("ndcg_ratio", {"k": 10, "mode": "live"}, live - 0.125),
                    ("mrr_ratio", {"mode": "live"}, 0.5)]))
    at = until - timedelta(days=1)
    store.record_run(RunRecord(
        probe="docs-recall", kind="recall", target="docs", started_at=at,
        finished_at=at + timedelta(seconds=1), status="error", error="target down"))


def wait_until(what: str, check: Any, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
