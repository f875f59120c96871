"""The ``report:`` section of the config: the weekly report's schedule, period, mail server,
recipients, retries and the daemon's ``/report`` page.

A malformed address (``from``, an entry of ``to``) is a config error at load that names the
key and the value; a report that is enabled needs a mail server and at least one recipient.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr, ValidationError, model_validator
from pydantic_core import InitErrorDetails

from ragmon.alerts.addresses import EmailAddress
from ragmon.monitor.config import Duration, ExistingPath, RootConfig, Secret, Strict, config_error

DEFAULT_SCHEDULE = "0 8 * * mon"


def _cron(value: str) -> str:
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(value, timezone="UTC")
    except ValueError as exc:
        raise config_error("cron", "not a cron expression ({reason}); write five fields in "
                           "UTC, like '0 8 * * mon'", {"reason": str(exc)},
                           echo_input=True) from None
    return value


Cron = Annotated[str, AfterValidator(_cron)]


class SmtpConfig(Strict):
    """The mail server the report is sent through."""

    host: str
    """SMTP server."""
    port: int = Field(default=587, ge=1, le=65535)
    """587 for STARTTLS, 465 for `ssl`, 25 for `none`."""
    security: Literal["starttls", "ssl", "none"] = "starttls"
    """`starttls` upgrades the connection, `ssl` is TLS from the start, `none` is plain."""
    username: str | None = None
    """Log in with this user ..."""
    password: Secret | None = None
    """... and this password: literal, `{env: VAR}` or `{file: PATH}`; never logged."""
    ca_file: ExistingPath | None = None
    """CA certificate(s) to trust instead of the system's, for a private CA."""
    timeout: Duration = 60.0
    """Time limit of one SMTP session, start to end however slowly the server answers; at
    most half of `report.retry.lease`."""


class RetryConfig(Strict):
    """How a failed send is retried within its period. Backoff doubles per attempt up to
    `max_backoff`; after `give_up_after` (from the scheduled time) or `max_attempts`, the
    period's report is recorded as failed for good and `RagmonReportMissing` follows."""

    backoff: Duration = 60.0
    """Wait before the first retry."""
    max_backoff: Duration = 3600.0
    """Longest wait between retries."""
    max_attempts: int = Field(default=24, ge=1, le=1000)
    """Attempts per period."""
    give_up_after: Duration = 86400.0
    """No attempt starts later than this after the scheduled time (also the window in which
    a daemon that was down at the scheduled time still sends that period's report);
    less than `report.period`."""
    lease: Duration = 900.0
    """How long a claimed period is reserved for the replica rendering and sending it; a
    replica that dies meanwhile leaves a claim that another takes over when it ends."""
    poll: Duration = 60.0
    """How often due retries and expired claims are looked for."""


class EndpointConfig(Strict):
    """The daemon's `/report` page: the current period's report as HTML, for a look through
    `kubectl port-forward` without waiting for the schedule."""

    enabled: bool = False
    """Serve `/report` (and `/report?since=...&until=...`). Query and example texts can be
    sensitive: it needs a `token`."""
    token: Secret | None = None
    """Bearer token a request must carry (`Authorization: Bearer TOKEN`): literal,
    `{env: VAR}` or `{file: PATH}`."""

    @model_validator(mode="after")
    def _token_when_enabled(self) -> EndpointConfig:
        if self.enabled and (self.token is None or not self.token.get_secret_value()):
            raise _error("token", "token_missing", "/report serves query texts: set "
                         "'token' (a secret, like {env: RAGMON_REPORT_TOKEN})", None)
        return self


class ReportConfig(Strict):
    """The weekly drift report: built from the stored history, sent by email once per period."""

    enabled: bool = False
    """Send the report on `schedule` from this daemon (each period once, whatever the
    number of replicas sharing the store)."""
    schedule: Cron = DEFAULT_SCHEDULE
    """Cron expression in UTC: when a period ends and its report is sent (Monday 08:00)."""
    period: Duration = 7 * 86400.0
    """Length of the period a report covers, ending at the scheduled time."""
    subject_prefix: str = ""
    """Put before the subject (`[search-team]`); the subject itself names ragmon, the
    period and the headline."""
    sender: EmailAddress | None = Field(default=None, alias="from")
    """The From address (written `from`): `ragmon@example.org` or `Name <addr>`."""
    to: list[EmailAddress] = Field(default_factory=list)
    """Recipients."""
    smtp: SmtpConfig | None = None
    """The mail server (required when `enabled`)."""
    retry: RetryConfig = RetryConfig()
    """Retries of a failed send within its period."""
    endpoint: EndpointConfig = EndpointConfig()
    """The daemon's `/report` page (off by default)."""

    @model_validator(mode="after")
    def _complete(self) -> ReportConfig:
        if self.enabled:
            for key, missing in (("smtp", self.smtp is None), ("from", self.sender is None),
                                 ("to", not self.to)):
                if missing:
                    raise _error(key, "report_incomplete", f"an enabled report needs "
                                 f"'{key}'", None)
        if self.retry.give_up_after >= self.period:
            raise _error(("retry", "give_up_after"), "give_up", "must be less than 'period' "
                         f"({self.period:g}s): retries of one period must end before the "
                         "next begins", self.retry.give_up_after)
        if self.smtp is not None and self.smtp.timeout > self.retry.lease / 2:
            raise _error(("smtp", "timeout"), "timeout_lease", f"is more than half of "
                         f"'retry.lease' ({self.retry.lease:g}s): a send could outlive its "
                         "claim and be sent twice; lower it or raise the lease",
                         self.smtp.timeout)
        return self

    def secrets(self) -> list[str]:
        """Every secret value of the section, for scrubbing error text."""
        found = [self.smtp.password if self.smtp else None, self.endpoint.token]
        return [s.get_secret_value() for s in found
                if isinstance(s, SecretStr) and s.get_secret_value()]


def _error(key: str | tuple[str, ...], kind: str, message: str,
           value: object) -> ValidationError:
    loc = (key,) if isinstance(key, str) else key
    return ValidationError.from_exception_data("ReportConfig", [InitErrorDetails(
        type=config_error(kind, message, {}), loc=loc, input=value)])


def report_section(config: RootConfig) -> ReportConfig:
    """The ``report:`` section of a loaded config, typed."""
    return config.section("report", ReportConfig)
