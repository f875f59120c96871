"""What a rule sees in one run: one observation per alert instance (label set)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from ragmon.alerts.config import RuleConfig, parse_condition
from ragmon.monitor.store import RunRecord

_MISSING = object()


@dataclass(frozen=True)
class Observation:
    """``matched`` is None when the run says nothing about the condition (no data)."""

    series: dict[str, str]
    matched: bool | None
    value: float | str | None


def compare(value: Any, op: str, ref: float | str) -> bool:
    if isinstance(ref, float):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return False
        if math.isnan(number):
            return False
        left: Any = number
    else:
        left = str(value)
    return bool({
        "<": lambda: left < ref, "<=": lambda: left <= ref, ">": lambda: left > ref,
        ">=": lambda: left >= ref, "==": lambda: left == ref, "!=": lambda: left != ref,
    }[op]())


def dig(details: dict[str, Any], path: str) -> Any:
    node: Any = details
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def observe(rule: RuleConfig, record: RunRecord) -> list[Observation]:
    """The rule's observations in ``record``; an empty list means no series was produced."""
    no_data = None if record.status != "ok" else False
    if rule.verdict is not None:
        verdict = record.details.get("verdict")
        if verdict is None:
            return [Observation({}, no_data, None)]
        return [Observation({}, verdict in rule.verdict, str(verdict))]
    assert rule.field is not None and rule.condition is not None
    op, ref = parse_condition(rule.condition)
    if rule.field == "status":
        return [Observation({}, compare(record.status, op, ref), record.status)]
    if rule.field.startswith("details."):
        value = dig(record.details, rule.field.removeprefix("details."))
        if value is _MISSING:
            return [Observation({}, no_data, None)]
        return [Observation({}, compare(value, op, ref), _plain(value))]
    found = []
    for name, labels, value in record.values:
        if name != rule.field:
            continue
        series = {str(k): str(v) for k, v in labels.items()}
        if all(series.get(k) == want for k, want in rule.match.items()):
            found.append(Observation(series, compare(value, op, ref), float(value)))
    return found


def _plain(value: Any) -> float | str:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def instance_labels(
    rule_name: str, rule: RuleConfig, record: RunRecord, series: dict[str, str]
) -> dict[str, str]:
    labels = {"alertname": rule_name, "probe": rule.probe, "severity": rule.severity}
    if record.target:
        labels["target"] = record.target
    labels.update(series)
    labels.update(rule.labels)
    return labels


def fingerprint(labels: dict[str, str]) -> str:
    text = json.dumps(labels, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
