"""The ``alerts`` config section: an absent section is a valid empty default; every bad rule
or sink is a config error naming the rule and the key, without echoing secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from alert_support import probe_sections

from ragmon.monitor.app import default_plugins, load_config, validate_raw
from ragmon.monitor.errors import ConfigError

HOOK = {"kind": "webhook", "url": "https://hooks.example.org/T0/secret-path-123"}
RULE = {"probe": "docs-recall", "field": "recall_ratio", "condition": "< 0.8"}


def issues(alerts: dict[str, Any], tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate_raw({**probe_sections(tmp_path), "alerts": alerts}, "ragmon.yaml", tmp_path)
    return [str(i) for i in info.value.issues]


def test_absent_section_is_an_empty_default() -> None:
    config = validate_raw({}, "ragmon.yaml", Path("."))
    assert config.alerts.enabled and config.alerts.rules == {} and config.alerts.sinks == {}
    assert config.alerts.repeat_interval == 4 * 3600


def test_a_full_section_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_URL", "https://hooks.slack.com/services/T/B/xyz")
    (tmp_path / "smtp-password").write_text("pw-from-file\n")
    path = tmp_path / "ragmon.yaml"
    path.write_text(yaml.safe_dump({**probe_sections(tmp_path), "alerts": {
        "external_url": "https://ragmon.example.org",
        "repeat_interval": "2h",
        "sinks": {
            "hook": {**HOOK, "hmac_secret": "k"},
            "chat": {"kind": "slack", "url": {"env": "SLACK_URL"}},
            "am": {"kind": "alertmanager", "url": "http://alertmanager:9093"},
            "mail": {"kind": "email", "host": "smtp.example.org", "username": "ragmon",
                     "password": {"file": "smtp-password"}, "from": "ragmon@example.org",
                     "to": ["team@example.org"]},
        },
        "rules": {
            "RecallLow": {**RULE, "match": {"k": 10, "mode": "live"}, "for": "15m",
                          "sinks": ["chat", "mail"], "labels": {"team": "search"}},
            "IndexBlamed": {"probe": "docs-recall", "verdict": ["index"],
                            "for_runs": {"k": 2, "n": 3}, "severity": "critical"},
        },
    }}))
    alerts = load_config(path).alerts
    assert alerts.rules["RecallLow"].for_ == 900 and alerts.rules["RecallLow"].match == {
        "k": "10", "mode": "live"}
    assert alerts.sinks["chat"].url.get_secret_value().endswith("/xyz")
    assert alerts.sinks["mail"].password.get_secret_value() == "pw-from-file"
    assert sorted(alerts.sinks_for(alerts.rules["IndexBlamed"])) == ["am", "chat", "hook", "mail"]


@pytest.mark.parametrize(("rule", "expected"), [
    ({**RULE, "treshold": 1},
     "alerts.rules.R.treshold: unknown key; valid keys: condition, description, field, for, "
     "for_runs, group_instances, labels, match, min_instances, probe, repeat_interval, "
     "runbook_url, severity, sinks, summary, verdict"),
    ({**RULE, "for": "5 minutes"},
     "alerts.rules.R.for: '5 minutes' is not a duration; use a number and a unit "
     "(ms, s, m, h, d, w), like '30s'"),
    ({**RULE, "condition": "below 0.8"},
     "alerts.rules.R.condition: not a condition; write an operator (<=, >=, ==, !=, <, >) and "
     "a value, like '< 0.8', got 'below 0.8'"),
    ({**RULE, "condition": "< high"},
     "alerts.rules.R.condition: compares text with '<'; text only takes == or !=, "
     "got '< high'"),
    ({**RULE, "summary": "{{ value + 'x' }}"},
     "alerts.rules.R.summary: template does not render: TypeError: unsupported operand "
     "type(s) for +: 'float' and 'str', got \"{{ value + 'x' }}\""),
    ({**RULE, "description": "{{ recall }}"},
     "alerts.rules.R.description: template does not render: unknown variable 'recall'; "
     "available: rule, probe, kind, target, severity, field, value, labels, status, since, "
     "run, details, values, reasons, regressed, more_regressed, series, link, instances, "
     "got '{{ recall }}'"),
    ({**RULE, "summary": "{% if value %}"},
     "alerts.rules.R.summary: template does not render: TemplateSyntaxError: Unexpected end "
     "of template. Jinja was looking for the following tags: 'elif' or 'else' or 'endif'. "
     "The innermost block that needs to be closed is 'if'., got '{% if value %}'"),
    ({**RULE, "sinks": ["hook", "pager"]},
     "alerts.rules.R.sinks[1]: unknown sink; valid sinks: hook, got 'pager'"),
    ({"probe": "docs-recall", "field": "recall_ratio"},
     "alerts.rules.R: 'field' needs a 'condition', like '< 0.8'"),
    ({"probe": "docs-recall", "verdict": ["x"], "field": "status", "condition": "!= ok"},
     "alerts.rules.R: give either 'field' (with 'condition') or 'verdict'"),
    ({**RULE, "for": "5m", "for_runs": {"k": 2, "n": 3}},
     "alerts.rules.R: give either 'for' or 'for_runs', not both"),
    ({**RULE, "for_runs": {"k": 4, "n": 3}},
     "alerts.rules.R.for_runs: k must not exceed n (k of the last n runs)"),
    ({**RULE, "labels": {"severity": "page"}},
     "alerts.rules.R.labels: label 'severity' is set by ragmon; choose another name, "
     "got {'severity': 'page'}"),
    ({**RULE, "severity": "page"},
     "alerts.rules.R.severity: Input should be 'critical', 'warning' or 'info', got 'page'"),
])
def test_bad_rule_names_the_rule_and_key(
    rule: dict[str, Any], expected: str, tmp_path: Path
) -> None:
    (found,) = issues({"sinks": {"hook": HOOK}, "rules": {"R": rule}}, tmp_path)
    if expected.startswith("alerts.rules.R: ") or "k must not exceed" in expected:
        # The loader may append ", got <the rule>" to whole-rule errors; the message leads.
        assert found.startswith(f"ragmon.yaml: {expected}")
    else:
        assert found == f"ragmon.yaml: {expected}"


def test_bad_sinks_never_echo_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NO_SUCH_VAR", raising=False)
    found = issues({"sinks": {
        "pager": {"kind": "pagerduty", "url": "https://x/secret-path-123"},
        "hook": {"kind": "webhook", "url": "https://x/secret-path-123", "hmac_secret": 42},
        "chat": {"kind": "slack", "url": {"env": "NO_SUCH_VAR"}},
        "mail": {"kind": "email", "host": "smtp", "from": "a@example.org", "to": [],
                 "password": "secret-path-123"},
    }}, tmp_path)
    assert found == [
        "ragmon.yaml: alerts.sinks.pager: unknown sink kind 'pagerduty'; valid kinds: "
        "alertmanager, email, slack, webhook",
        "ragmon.yaml: alerts.sinks.hook.hmac_secret: a secret is a string, {env: VARIABLE} or "
        "{file: PATH}",
        "ragmon.yaml: alerts.sinks.chat.url: environment variable 'NO_SUCH_VAR' is not set; "
        "export it or use {file: PATH}",
        "ragmon.yaml: alerts.sinks.mail.to: List should have at least 1 item after validation, "
        "not 0, got []",
    ]
    assert "secret-path-123" not in "\n".join(found)


def test_references_to_probes_and_their_values() -> None:
    from ragmon.alerts.config import reference_issues

    raw = {
        "probes": {"canary": {"kind": "canary", "embedder": "minilm"}},
        "alerts": {"rules": {
            "Ok": {"probe": "canary", "field": "canary_changed", "condition": "== 1"},
            "Status": {"probe": "canary", "field": "status", "condition": "!= ok"},
            "Typo": {"probe": "canary", "field": "canary_cosine", "condition": "< 0.99"},
            "Gone": {"probe": "docs-recall", "field": "recall_ratio", "condition": "< 0.8"},
        }},
    }
    assert [str(i) for i in reference_issues(raw, "ragmon.yaml", default_plugins())] == [
        "ragmon.yaml: alerts.rules.Typo.field: probe kind 'canary' produces no value "
        "'canary_cosine'; valid: status, details.PATH, canary_changed, canary_cosine_mean, "
        "canary_cosine_min, canary_dimension, canary_norm_deviation_max",
        "ragmon.yaml: alerts.rules.Gone.probe: unknown probe 'docs-recall'; valid: canary",
    ]


def test_the_documented_example_is_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "alerts.md").read_text()
    example = re.search(r"## Path 2.*?```yaml\n(.*?)```", doc, re.S)
    assert example is not None
    (tmp_path / "hmac").write_text("secret\n")
    raw = {**probe_sections(tmp_path),
           **yaml.safe_load(example.group(1).replace("/run/secrets/ragmon-hmac", "hmac"))}
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/x")
    monkeypatch.setenv("SMTP_PASSWORD", "pw")
    config = validate_raw(raw, "ragmon.yaml", tmp_path)
    assert set(config.alerts.rules) == {"RagmonDocsRecallLow", "RagmonIndexBlamed",
                                        "RagmonCanaryFailing", "RagmonQueryTopicsMoved"}


def test_config_load_rejects_rules_on_unknown_probes_and_values(tmp_path: Path) -> None:
    found = issues({"rules": {
        "Typo": {**RULE, "probe": "docs-recal"},
        "NoSuchValue": {**RULE, "field": "recall"},
    }}, tmp_path)
    assert found[0] == ("ragmon.yaml: alerts.rules.Typo.probe: unknown probe 'docs-recal'; "
                        "valid: canary, docs-recall, query-drift")
    assert found[1].startswith("ragmon.yaml: alerts.rules.NoSuchValue.field: probe kind "
                               "'recall' produces no value 'recall'; valid: status, ")
    assert len(found) == 2


@pytest.mark.parametrize(("delivery", "expected"), [
    ({"timeout": "3s", "lease": "5s"},
     "alerts.delivery.timeout: 3s is more than half of 'lease' (5s): a send could outlive its "
     "claim and be sent again; lower 'timeout' or raise 'lease'"),
    ({"lease": "10s"},  # the default timeout (10s) against a short lease
     "alerts.delivery.timeout: 10s is more than half of 'lease' (10s): a send could outlive "
     "its claim and be sent again; lower 'timeout' or raise 'lease'"),
])
def test_a_delivery_timeout_must_leave_half_the_lease(
    delivery: dict[str, Any], expected: str, tmp_path: Path
) -> None:
    assert issues({"delivery": delivery}, tmp_path) == [f"ragmon.yaml: {expected}"]
    config = validate_raw({"alerts": {"delivery": {"timeout": "3s", "lease": "6s"}}},
                          "ragmon.yaml", tmp_path)
    assert (config.alerts.delivery.timeout, config.alerts.delivery.lease) == (3.0, 6.0)


def test_a_malformed_email_sink_address_is_a_config_error(tmp_path: Path) -> None:
    found = issues({"sinks": {"mail": {"kind": "email", "host": "smtp",
                                       "from": "ragmon@example.org",
                                       "to": ["oncall@example.org", "oncall-at-example.org"]}}},
                   tmp_path)
    assert found == ["ragmon.yaml: alerts.sinks.mail.to[1]: not an email address (An email "
                     "address must have an @-sign), got 'oncall-at-example.org'"]
