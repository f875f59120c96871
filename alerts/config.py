"""The ``alerts`` section of the config: in-daemon rules and notification sinks.

A rule watches one probe. After every run of that probe it looks at one thing the run
produced — a numeric value (``field: recall_ratio`` with ``match: {k: "10", mode: live}``),
the run ``status``, a value inside the run's ``details`` (``field: details.verdict``), or
the attribution ``verdict`` — and compares it with a ``condition``. The alert fires when
the condition has held for ``for`` (a duration) or in ``for_runs.k`` of the last
``for_runs.n`` runs. Bad rules are config errors that name the rule and the key.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails

from ragmon.alerts.sinks import SINK_KINDS
from ragmon.alerts.templates import DESCRIPTION as DEFAULT_DESCRIPTION
from ragmon.alerts.templates import (
    DESCRIPTION_GROUP,
    SUMMARY_GROUP,
    check_template,
    default_summary,
)
from ragmon.monitor.config import Duration, OptionalDelay, RootConfig, Strict, config_error
from ragmon.monitor.errors import ConfigIssue
from ragmon.monitor.plugins import Plugins

_OPERATORS = ("<=", ">=", "==", "!=", "<", ">")
_CONDITION = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*(\S(?:.*\S)?)\s*$")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_LABELS = ("alertname", "severity", "probe")


def parse_condition(text: str) -> tuple[str, float | str]:
    """``"< 0.8"`` -> ``("<", 0.8)``; ``"!= ok"`` -> ``("!=", "ok")``."""
    m = _CONDITION.match(text)
    if not m:
        raise config_error(
            "condition",
            "not a condition; write an operator ({ops}) and a value, like '< 0.8'",
            {"ops": ", ".join(_OPERATORS)}, echo_input=True
        )
    op, raw = m.groups()
    try:
        return op, float(raw)
    except ValueError:
        if op not in ("==", "!="):
            raise config_error(
                "condition",
                "compares text with {op}; text only takes == or !=",
                {"op": repr(op)}, echo_input=True
            ) from None
        return op, raw.strip("'\"")


class ForRuns(Strict):
    """Persistence in runs: the condition held in at least ``k`` of the last ``n`` runs."""

    k: int = Field(ge=1, description="Runs in which the condition must hold ...")
    n: int = Field(ge=1, le=100, description="... among the last n runs.")

    @model_validator(mode="after")
    def _k_le_n(self) -> ForRuns:
        if self.k > self.n:
            raise config_error("k_of_n", "k must not exceed n (k of the last n runs)", {})
        return self


class RuleConfig(Strict):
    """One in-daemon alert rule (the key under ``alerts.rules`` is the alert name)."""

    probe: str = Field(description="The probe (in `probes`) whose runs the rule watches.")
    field: str | None = Field(default=None, description=(
        "What to compare: a value of the run (`recall_ratio`), `status`, or "
        "`details.PATH`. Give `field` with `condition`, or `verdict`."))
    match: dict[str, str] = Field(default_factory=dict, description=(
        "Label values a value must have (`{k: 10, mode: live}`); each matching series is "
        "its own alert instance."))
    verdict: list[str] | None = Field(default=None, description=(
        "Fire when the run's attribution verdict is one of these."))
    condition: str | None = Field(default=None, description=(
        "An operator and a value: `< 0.8`, `>= 3`, `!= ok`."))
    for_: OptionalDelay = Field(default=0.0, alias="for", description=(
        "How long the condition must hold before the alert fires (written `for`)."))
    for_runs: ForRuns | None = Field(default=None, description=(
        "Instead of `for`: fire when the condition held in k of the last n runs."))
    severity: Literal["critical", "warning", "info"] = Field(
        default="warning", description="The `severity` label.")
    labels: dict[str, str] = Field(default_factory=dict, description=(
        "Extra labels on the alert (alertname, severity and probe are set by ragmon)."))
    summary: str | None = Field(default=None, description=(
        "Jinja2 template of the one-line summary (see docs/alerts.md). Default: by what "
        "the rule watches, the value, verdict or error of the run."))
    description: str | None = Field(default=None, description=(
        "Jinja2 template of the longer description. Default: the value, the verdict and "
        "its first reasons, a failed run's error, the worst regressed queries and a link."))
    runbook_url: str | None = Field(default=None, description="Added as an annotation.")
    sinks: list[str] | None = Field(default=None, description=(
        "Sinks (in `alerts.sinks`) to notify; all of them when absent."))
    repeat_interval: Duration | None = Field(default=None, description=(
        "Re-notify a still-firing alert this often (default: `alerts.repeat_interval`)."))
    group_instances: bool = Field(default=False, description=(
        "Sidecars (`deployment.mode: sidecar`) sharing a store: one alert for the probe "
        "across every instance, firing while at least `min_instances` of them match, with "
        "the count as its value and the matching instances named, instead of one alert per "
        "instance. An instance counts while its newest run is within 3 probe intervals."))
    min_instances: int = Field(default=1, ge=1, description=(
        "With `group_instances`: how many instances must match for the alert to fire."))

    @field_validator("match", mode="before")
    @classmethod
    def _match_as_text(cls, value: Any) -> Any:
        # YAML reads `k: 10` as an int; label values are text.
        if isinstance(value, dict):
            return {k: v if isinstance(v, str) else str(v) for k, v in value.items()}
        return value

    @field_validator("condition")
    @classmethod
    def _condition(cls, value: str | None) -> str | None:
        if value is not None:
            parse_condition(value)
        return value

    @field_validator("labels")
    @classmethod
    def _label_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _LABEL_NAME.match(name):
                raise config_error(
                    "label_name", "label name {name} must match [A-Za-z_][A-Za-z0-9_]*",
                    {"name": repr(name)}, echo_input=True
                )
            if name in RESERVED_LABELS:
                raise config_error(
                    "label_name", "label {name} is set by ragmon; choose another name",
                    {"name": repr(name)}, echo_input=True
                )
        return value

    @field_validator("summary", "description")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        problem = None if value is None else check_template(value)
        if problem:
            raise config_error("template", "template does not render: {problem}",
                                      {"problem": problem}, echo_input=True)
        return value

    @model_validator(mode="after")
    def _what_to_watch(self) -> RuleConfig:
        if (self.field is None) == (self.verdict is None):
            raise config_error(
                "rule_shape", "give either 'field' (with 'condition') or 'verdict'", {}
            )
        if self.field is not None and self.condition is None:
            raise config_error("rule_shape", "'field' needs a 'condition', like '< 0.8'", {})
        if self.verdict is not None and self.condition is not None:
            raise config_error(
                "rule_shape", "'verdict' lists the verdicts that fire; drop 'condition'", {}
            )
        if self.for_runs is not None and self.for_ > 0:
            raise config_error("rule_shape", "give either 'for' or 'for_runs', not both", {})
        return self

    @property
    def watched(self) -> str:
        """What the rule looks at, for messages and the ``field`` template variable."""
        return self.field if self.field is not None else "verdict"

    @property
    def summary_template(self) -> str:
        if self.summary is None and self.group_instances:
            return SUMMARY_GROUP
        return self.summary if self.summary is not None else \
            default_summary(self.watched, self.verdict is not None)

    @property
    def description_template(self) -> str:
        if self.description is None and self.group_instances:
            return DESCRIPTION_GROUP
        return self.description if self.description is not None else DEFAULT_DESCRIPTION


class DeliveryConfig(Strict):
    """How notifications are retried. Backoff doubles per attempt up to ``max_backoff``.

    A send must end while its claim (the lease) still holds, or another replica could claim
    and send the notification again; so ``timeout`` is at most half the lease, leaving the
    other half for clock skew between replicas and for recording the result."""

    max_attempts: int = Field(default=10, ge=1, le=1000, description=(
        "Attempts per notification before it is marked failed."))
    backoff: Duration = Field(default=2.0, description="Wait before the first retry.")
    max_backoff: Duration = Field(default=300.0, description="Longest wait between retries.")
    timeout: Duration = Field(default=10.0, description=(
        "Time limit of one delivery (HTTP request or SMTP session), start to end however "
        "slowly the receiver answers; at most half of `lease`. A sink may set its own."))
    lease: Duration = Field(default=120.0, description=(
        "How long a claimed notification is reserved for the replica sending it; no send "
        "lasts more than half of it."))
    poll: Duration = Field(default=1.0, description="How often due notifications are checked.")

    @model_validator(mode="after")
    def _timeout_within_lease(self) -> DeliveryConfig:
        if self.timeout > self.lease / 2:
            raise ValidationError.from_exception_data("DeliveryConfig", [InitErrorDetails(
                type=config_error(
                    "timeout_lease",
                    "{timeout} is more than half of 'lease' ({lease}): a send could outlive its "
                    "claim and be sent again; lower 'timeout' or raise 'lease'",
                    {"timeout": f"{self.timeout:g}s", "lease": f"{self.lease:g}s"}),
                loc=("timeout",), input=self.timeout)])
        return self


class AlertsConfig(Strict):
    """In-daemon alert rules and notification sinks."""

    enabled: bool = Field(default=True, description=(
        "Evaluate the rules and deliver notifications in this daemon."))
    external_url: str | None = Field(default=None, description=(
        "How people reach this daemon; notifications link to `<external_url>/alerts?rule=NAME`."))
    repeat_interval: Duration = Field(default=4 * 3600.0, description=(
        "Re-notify a still-firing alert this often."))
    delivery: DeliveryConfig = DeliveryConfig()
    sinks: dict[str, SINK_KINDS.config_union()] = Field(  # type: ignore[valid-type]
        default_factory=dict)
    rules: dict[str, RuleConfig] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_sinks(self) -> AlertsConfig:
        valid = ", ".join(sorted(self.sinks)) or "none: 'alerts.sinks' is empty"
        errors = [
            InitErrorDetails(
                type=config_error("unknown_sink", "unknown sink; valid sinks: {valid}",
                                  {"valid": valid}, echo_input=True),
                loc=("rules", rule, "sinks", i),
                input=sink,
            )
            for rule, cfg in self.rules.items()
            for i, sink in enumerate(cfg.sinks or [])
            if sink not in self.sinks
        ]
        if errors:
            raise ValidationError.from_exception_data("AlertsConfig", errors)
        return self

    def sinks_for(self, rule: RuleConfig) -> list[str]:
        return list(self.sinks) if rule.sinks is None else list(rule.sinks)

    def secrets(self) -> list[str]:
        """Every secret value in the sinks, so that error text can be scrubbed of them."""
        found: list[str] = []
        for sink in self.sinks.values():
            for name in type(sink).model_fields:
                value = getattr(sink, name)
                values = value.values() if isinstance(value, dict) else [value]
                found += [v.get_secret_value() for v in values
                          if isinstance(v, SecretStr) and v.get_secret_value()]
        return found


def alerts_section(config: RootConfig) -> AlertsConfig:
    """The ``alerts:`` section of a loaded config, typed."""
    return config.section("alerts", AlertsConfig)


def reference_issues(raw: dict[str, Any], source: str, plugins: Plugins) -> list[ConfigIssue]:
    """Rules naming a probe that is not configured, or a value its kind never produces.

    Called by the config loader with the raw config, beside its other cross-references
    (a rule's section cannot see ``probes`` while it is validated).
    """
    alerts = raw.get("alerts")
    rules = alerts.get("rules") if isinstance(alerts, dict) else None
    if not isinstance(rules, dict):
        return []
    raw_probes = raw.get("probes")
    probes: dict[str, Any] = raw_probes if isinstance(raw_probes, dict) else {}
    issues = []
    for name, rule in rules.items():
        if not isinstance(rule, dict) or not isinstance(rule.get("probe"), str):
            continue
        probe = probes.get(rule["probe"])
        if not isinstance(probe, dict):
            valid = ", ".join(sorted(probes)) if probes else "none: 'probes' is empty"
            issues.append(ConfigIssue(source, f"alerts.rules.{name}.probe",
                                      f"unknown probe {rule['probe']!r}; valid: {valid}"))
            continue
        problem = _field_problem(rule.get("field"), probe.get("kind"), plugins)
        if problem:
            issues.append(ConfigIssue(source, f"alerts.rules.{name}.field", problem))
    return issues


def _field_problem(field: Any, kind: Any, plugins: Plugins) -> str | None:
    """Why ``field`` is not something a probe of ``kind`` produces, or None."""
    if not isinstance(field, str) or field == "status" or field.startswith("details."):
        return None
    metrics = plugins.metric_specs().get(kind) if isinstance(kind, str) else None
    if not metrics or field in metrics:
        return None
    valid = ", ".join(["status", "details.PATH", *sorted(metrics)])
    return f"probe kind {kind!r} produces no value {field!r}; valid: {valid}"
