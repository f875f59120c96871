"""Email over SMTP: STARTTLS (default), implicit TLS or plain, with optional AUTH."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from html import escape
from typing import Literal

from pydantic import Field

from ragmon.alerts.sinks.base import Notification, Sink
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
        "Time limit of one SMTP session (default: `alerts.delivery.timeout`)."))


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

    def send(self, notification: Notification) -> None:
        cfg: EmailConfig = self.config
        context = ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)
        try:
            if cfg.security == "tls":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    cfg.host, cfg.port, timeout=self.timeout, context=context
                )
            else:
                client = smtplib.SMTP(cfg.host, cfg.port, timeout=self.timeout)
            with client:
                if cfg.security == "starttls":
                    client.starttls(context=context)
                if cfg.username and cfg.password is not None:
                    client.login(cfg.username, cfg.password.get_secret_value())
                client.send_message(email_message(notification, cfg))
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


def _smtp_text(exc: smtplib.SMTPException) -> str:
    code = getattr(exc, "smtp_code", None)
    text = getattr(exc, "smtp_error", b"")
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return f"{code} {text}".strip() if code else str(exc.args[0] if exc.args else "")
