"""One SMTP session, shared by the alert email sink and the weekly report: STARTTLS, implicit
TLS (``ssl``; the email sink calls it ``tls``) or plain, optional AUTH, and a deadline that
bounds the whole session however slowly the server answers.

Errors are :class:`SmtpSendError` with a one-line message naming the server and the reason
(the server's code and text, or the socket error); never the password.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from ragmon.alerts.sinks.base import deadline_file, time_left
from ragmon.monitor.errors import RagmonError

#: Implicit TLS from the first byte; ``tls`` is the email sink's name for it.
IMPLICIT_TLS = ("ssl", "tls")


class SmtpSendError(RagmonError):
    """The message was not accepted; ``kind`` says why: connect, auth, recipients, refused."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def send_message(
    message: EmailMessage, *, host: str, port: int, security: str, deadline: float,
    username: str | None = None, password: str | None = None, ca_file: Path | None = None,
) -> dict[str, Any]:
    """Send ``message`` to its To addresses, ending by ``deadline`` (``time.monotonic()``).

    Returns the recipients the server refused while accepting others (the message went out:
    sending it again would reach the others twice); raises SmtpSendError when nothing was
    accepted."""
    where = f"{host}:{port}"
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (ssl.SSLError, OSError) as exc:
        raise SmtpSendError(f"{where}: ca_file {str(ca_file)!r} holds no usable CA certificate "
                            f"({getattr(exc, 'reason', None) or exc}); give a PEM file",
                            "config") from None
    try:
        timeout = time_left(deadline)
    except TimeoutError:
        raise SmtpSendError(f"cannot talk to {where}: timed out (no time was left to send)",
                            "connect") from None
    client: smtplib.SMTP = (
        _DeadlineSMTPSSL(deadline, timeout=timeout, context=context)
        if security in IMPLICIT_TLS else _DeadlineSMTP(deadline, timeout=timeout)
    )
    try:
        client.connect(host, port)
        if security == "starttls":
            client.starttls(context=context)
        if username and password is not None:
            client.login(username, password)
        refused: dict[str, Any] = client.send_message(message)
        try:  # the server took the message: a failed goodbye does not undo that
            client.quit()
        except (smtplib.SMTPException, OSError):
            pass
        return refused
    except smtplib.SMTPAuthenticationError as exc:
        raise SmtpSendError(f"{where} refused the login of {username!r} ({exc.smtp_code}); "
                            "check username and password", "auth") from None
    except smtplib.SMTPRecipientsRefused as exc:
        refused_text = ", ".join(f"{rcpt} ({code})" for rcpt, (code, _) in exc.recipients.items())
        raise SmtpSendError(f"{where} refused every recipient: {refused_text}",
                            "recipients") from None
    except smtplib.SMTPException as exc:
        raise SmtpSendError(f"{where}: {type(exc).__name__}: {_smtp_text(exc)}",
                            "refused") from None
    except (ssl.SSLError, OSError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (
            getattr(exc, "strerror", None) or getattr(exc, "reason", None) or type(exc).__name__
        )
        raise SmtpSendError(f"cannot talk to {where}: {reason}", "connect") from None
    finally:
        client.close()


class _DeadlineSMTP(smtplib.SMTP):
    """An SMTP session that ends by ``deadline`` (``time.monotonic()``): it connects in the
    time left, and sets the socket timeout to the time left before every command and before
    every read of a reply, so a server that answers one byte at a time cannot stretch it.
    The TLS handshake of STARTTLS inherits the time left at the last read."""

    def __init__(self, deadline: float, **kwargs: Any):
        self.deadline = deadline
        super().__init__(**kwargs)  # no host: connect() is called by send_message

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
