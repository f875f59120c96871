"""Email over SMTP: STARTTLS (default), implicit TLS or plain, with optional AUTH."""

from __future__ import annotations

import smtplib
import socket
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from html import escape
from typing import Any, Literal

from pydantic import Field

from ragmon.alerts.sinks.base import Notification, Sink, deadline_file, time_left
from ragmon.monitor.config import Duration, ExistingPath, KindConfig, Secret


class EmailConfig(KindConfig):
    """Email over SMTP."""

    kind: Literal["email"]
    host: str = Field(description="SMTP server.")
    port: int = Field(default=587, ge=1, le=65535, description="587 for STARTTLS, 465 for TLS.")
    security: Literal["starttls", "tls", "none"] = Field(default="starttls", description=(
        "`starttls` upgrades the connection, `tls` is TLS from the start, `none` is plain."))
    username: str | None = Field(default=None, description="Log in with this user ...")
    password: Secret | None = Field(default=None, description="... and this password.")
    sender: str = Field(alias="from", description="The From address (written `from`).")
    to: list[str] = Field(min_length=1, description="Recipients.")
    ca_file: ExistingPath | None = Field(default=None, description=(
        "CA certificate(s) to trust instead of the system's, for a private CA."))
    send_resolved: bool = Field(default=True, description="Also notify when an alert resolves.")
    timeout: Duration | None = Field(default=None, description=(
        "Time limit of one SMTP session, start to end however slowly the receiver answers "
        "(default: `alerts.delivery.timeout`; at most half of `alerts.delivery.lease` is "
        "used)."))


def email_message(n: Notification, cfg: EmailConfig) -> EmailMessage:
    tag = "RESOLVED" if n.status == "resolved" else "FIRING"
    msg = EmailMessage()
    msg["Subject"] = f"[{tag}] {n.rule}: {n.summary}"
    msg["From"] = cfg.sender
    msg["To"] = ", ".join(cfg.to)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain="ragmon")
    labels = "\n".join(f"  {k}: {v}" for k, v in sorted(n.labels.items()))
    description = n.annotations.get("description", "")
    link = f"\n{n.generator_url}\n" if n.generator_url else ""
    msg.set_content(
        f"{tag}: {n.summary}\n\n{description}\n\nsince {n.starts_at}"
        + (f", resolved {n.ends_at}" if n.ends_at else "") + f"\n\nlabels:\n{labels}\n{link}"
    )
    rows = "".join(
        f"<tr><td>{escape(k)}</td><td>{escape(str(v))}</td></tr>"
        for k, v in sorted(n.labels.items())
    )
    msg.add_alternative(
        f"<h2>{escape(tag)}: {escape(n.summary)}</h2><p>{escape(description)}</p>"
        f"<p>since {escape(n.starts_at)}</p><table>{rows}</table>",
        subtype="html",
    )
    return msg


class EmailSink(Sink):
    kind = "email"
    Config = EmailConfig

    def send(self, notification: Notification, deadline: float | None = None) -> None:
        cfg: EmailConfig = self.config
        context = ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)
        by = self.deadline(deadline)
        client: smtplib.SMTP = (
            _DeadlineSMTPSSL(by, timeout=self.timeout, context=context)
            if cfg.security == "tls" else _DeadlineSMTP(by, timeout=self.timeout)
        )
        try:
            client.connect(cfg.host, cfg.port)
            if cfg.security == "starttls":
                client.starttls(context=context)
            if cfg.username and cfg.password is not None:
                client.login(cfg.username, cfg.password.get_secret_value())
            client.send_message(email_message(notification, cfg))
            try:  # the server took the message: a failed goodbye does not undo that
                client.quit()
            except (smtplib.SMTPException, OSError):
                pass
        except smtplib.SMTPAuthenticationError as exc:
            raise self.error(
                f"{cfg.host}:{cfg.port} refused the login of {cfg.username!r} "
                f"({exc.smtp_code}); check username and password"
            ) from None
        except smtplib.SMTPException as exc:
            raise self.error(
                f"{cfg.host}:{cfg.port}: {type(exc).__name__}: {_smtp_text(exc)}"
            ) from None
        except (ssl.SSLError, OSError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else (
                getattr(exc, "strerror", None) or getattr(exc, "reason", None) or type(exc).__name__
            )
            raise self.error(f"cannot talk to {cfg.host}:{cfg.port}: {reason}") from None
        finally:
            client.close()


class _DeadlineSMTP(smtplib.SMTP):
    """An SMTP session that ends by ``deadline`` (``time.monotonic()``): it connects in the
    time left, and sets the socket timeout to the time left before every command and before
    every read of a reply, so a server that answers one byte at a time cannot stretch it.
    The TLS handshake of STARTTLS inherits the time left at the last read."""

    def __init__(self, deadline: float, **kwargs: Any):
        self.deadline = deadline
        super().__init__(**kwargs)  # no host: connect() is called by the sink

    def connect(self, host: str = "localhost", port: int = 0,
                source_address: Any = None) -> tuple[int, bytes]:
        self._host = host  # the name TLS checks the certificate against
        return super().connect(host, port, source_address)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        connect = super()._get_socket  # type: ignore[misc] # private, absent from the stubs
        sock: socket.socket = connect(host, port, time_left(self.deadline))
        return sock

    def send(self, s: Any) -> None:
        if self.sock is not None:
            self.sock.settimeout(time_left(self.deadline))
        super().send(s)

    def getreply(self) -> tuple[int, bytes]:
        if self.file is None and self.sock is not None:
            self.file = deadline_file(self.sock, self.deadline)
        try:
            return super().getreply()
        except smtplib.SMTPServerDisconnected:
            if time.monotonic() >= self.deadline:  # smtplib words a timeout as a disconnect
                raise TimeoutError("timed out") from None
            raise


class _DeadlineSMTPSSL(_DeadlineSMTP, smtplib.SMTP_SSL):
    """Implicit TLS: the handshake is bounded by the time left when connecting."""


def _smtp_text(exc: smtplib.SMTPException) -> str:
    code = getattr(exc, "smtp_code", None)
    text = getattr(exc, "smtp_error", b"")
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return f"{code} {text}".strip() if code else str(exc.args[0] if exc.args else "")
