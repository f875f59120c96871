"""Email over SMTP: STARTTLS (default), implicit TLS or plain, with optional AUTH (the
session itself is ``ragmon.alerts.smtp``, shared with the weekly report)."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from html import escape
from typing import Literal

from pydantic import Field

from ragmon.alerts.addresses import EmailAddress
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
    sender: EmailAddress = Field(alias="from", description="The From address (written `from`).")
    to: list[EmailAddress] = Field(min_length=1, description="Recipients.")
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
        # Imported here: ragmon.alerts.smtp imports this package's base module.
        from ragmon.alerts.smtp import SmtpSendError, send_message

        try:
            send_message(
                email_message(notification, cfg), host=cfg.host, port=cfg.port,
                security=cfg.security, deadline=self.deadline(deadline),
                username=cfg.username,
                password=cfg.password.get_secret_value() if cfg.password is not None else None,
                ca_file=cfg.ca_file,
            )
        except SmtpSendError as exc:
            raise self.error(str(exc)) from None
