"""The metric names the shipped Prometheus rules (``alerts/rules/ragmon.rules.yaml``) read,
and where each one comes from.

Most are exported by any daemon whose config has the part they describe (a recall probe,
a canary). A few exist only when a feature is configured, or installed at all; they are
declared in :data:`CONDITIONAL` with that feature and a test of the config that turns it
on. The test suite scrapes a real daemon set up like ``ragmon demo`` and requires every
name a rule reads to be exported, made by Prometheus itself (:data:`SCRAPE_SERIES`), or
declared here for a feature that config does not have: a rule reading a name nothing
exports can never fire, and its unit test on made-up series would not notice.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ragmon.monitor.config import RootConfig

#: The shipped rule file.
RULES_FILE = Path(__file__).resolve().parent / "rules" / "ragmon.rules.yaml"

#: Series Prometheus makes for every scrape target (not exported by ragmon).
SCRAPE_SERIES = frozenset({"up"})

# Label matchers, ranges, strings and the label lists of on()/by() hold no metric names.
_NOT_NAMES = re.compile(r'\{[^}]*\}|\[[^\]]*\]|"[^"]*"'
                        r"|\b(?:on|ignoring|by|without|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset"})


def expression_names(expr: str) -> list[str]:
    """The metric names a PromQL expression reads (functions and keywords left out)."""
    bare = _NOT_NAMES.sub(" ", expr)
    return [m.group(1) for m in _IDENTIFIER.finditer(bare)
            if m.group(2) is None and m.group(1) not in _KEYWORDS]


@dataclass(frozen=True)
class Conditional:
    """A metric that exists only when ``feature`` is configured (``configured(config)``)."""

    feature: str
    configured: Callable[[RootConfig], bool]


def _report_configured(config: RootConfig) -> bool:
    report = getattr(config, "report", None)
    return bool(getattr(report, "enabled", False))


#: Metrics the rules read that only a configured feature exports.
CONDITIONAL: dict[str, Conditional] = {
    "ragmon_report_last_success_timestamp_seconds": Conditional(
        "the weekly report (report.enabled: a daemon that sends it exports when it last "
        "did)", _report_configured),
}


def rule_metric_names(rules_file: Path = RULES_FILE) -> dict[str, list[str]]:
    """Metric name -> the rules (alert or record names) whose expressions read it; the
    rule file's own recording rules (names with a colon) are left out."""
    groups: list[dict[str, Any]] = yaml.safe_load(rules_file.read_text())["groups"]
    used: dict[str, list[str]] = {}
    for group in groups:
        for rule in group["rules"]:
            reader = rule.get("alert") or rule["record"]
            for name in expression_names(rule["expr"]):
                readers = used.setdefault(name, []) if ":" not in name else []
                if reader not in readers:
                    readers.append(reader)
    return used


def unexplained(exported: set[str], config: RootConfig,
                rules_file: Path = RULES_FILE) -> dict[str, str]:
    """Names the rules read that a daemon with ``config`` does not export and that nothing
    here explains, with why each is a problem."""
    problems = {}
    for name, rules in sorted(rule_metric_names(rules_file).items()):
        if name in exported or name in SCRAPE_SERIES:
            continue
        cond = CONDITIONAL.get(name)
        if cond is None:
            problems[name] = f"read by {', '.join(rules)}, exported by nothing"
        elif cond.configured(config):
            problems[name] = (f"read by {', '.join(rules)}; {cond.feature} is configured "
                              "but does not export it")
    return problems
