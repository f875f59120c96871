"""The shipped Prometheus rules: promtool check/test with the real promtool (Prometheus 2.42),
kubernetes-mixin conventions, a runbook per alert, and a firing and a quiet case per alert."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ..conftest import promtool_path

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "alerts" / "rules"
RULES = RULES_DIR / "ragmon.rules.yaml"
TESTS = RULES_DIR / "tests.yaml"
PROMTOOL = promtool_path()
RUNBOOK_BASE = "https://github.com/ragmon/ragmon/blob/main/docs/runbooks/"


def promtool(*args: str, cwd: Path = RULES_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def alerts() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_is_2_42() -> None:
    out = promtool("--version")
    assert "version 2.42" in out.stdout + out.stderr


def test_promtool_check_rules() -> None:
    out = promtool("check", "rules", str(RULES))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_promtool_test_rules() -> None:
    out = promtool("test", "rules", str(TESTS))
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_tests_fail_when_a_threshold_changes(tmp_path: Path) -> None:
    """The unit tests pin behaviour: moving the recall floor must break them."""
    text = RULES.read_text()
    floor = '(ragmon_recall_ratio{mode="live"}) < 0.5'
    assert floor in text
    (tmp_path / "ragmon.rules.yaml").write_text(text.replace(floor, floor[:-3] + "0.2"))
    shutil.copy(TESTS, tmp_path / "tests.yaml")
    out = promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert out.returncode != 0
    assert "RagmonRecallBelowFloor" in out.stdout + out.stderr


def test_required_alerts_are_covered() -> None:
    names = {rule["alert"] for rule in alerts()}
    assert names >= {
        "RagmonDown", "RagmonAbsent", "RagmonProbeFailing", "RagmonProbeStale",
        "RagmonRecallBelowFloor", "RagmonRecallDropped", "RagmonIndexFidelityLow",
        "RagmonEmbeddingPipelineChanged", "RagmonEmbeddingDrift", "RagmonCoverageGapRising",
        "RagmonReportMissing",
    }


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"])
def test_alert_follows_mixin_conventions(rule: dict) -> None:
    name = rule["alert"]
    assert re.fullmatch(r"Ragmon(?:[A-Z][a-z0-9]*)+", name)
    assert rule.get("for"), f"{name}: 'for' must be set"
    assert rule["labels"]["severity"] in ("critical", "warning", "info")
    assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
    assert rule["annotations"]["runbook_url"] == f"{RUNBOOK_BASE}{name}.md"
    runbook = REPO / "docs" / "runbooks" / f"{name}.md"
    assert runbook.exists(), f"{name}: write {runbook.relative_to(REPO)}"
    assert runbook.read_text().startswith(f"# {name}\n")


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"])
def test_alert_has_firing_and_quiet_unit_tests(rule: dict) -> None:
    cases = [
        case for test in yaml.safe_load(TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", []) if case["alertname"] == rule["alert"]
    ]
    assert any(case.get("exp_alerts") for case in cases), f"{rule['alert']}: no firing case"
    assert any(not case.get("exp_alerts") for case in cases), f"{rule['alert']}: no quiet case"


def per_k_metrics() -> set[str]:
    """Exported names of every probe kind's values that carry a ``k`` label."""
    from ragmon.monitor.app import default_plugins

    return {f"ragmon_{name}" for specs in default_plugins().metric_specs().values()
            for name, spec in specs.items() if "k" in spec.labels}


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"])
def test_a_rule_on_a_per_k_metric_reads_the_verdict_k_only(rule: dict) -> None:
    """One k per rule (the verdict k), or healthy recall@1 pages and one incident fans out
    into an alert per k."""
    from ragmon.alerts.rule_metrics import expression_names

    per_k = set(expression_names(rule["expr"])) & per_k_metrics()
    if per_k:
        assert ("and on(job, probe, k, ragmon_instance) max by (job, probe, k, "
                "ragmon_instance) (ragmon_recall_verdict_k)") in \
            " ".join(rule["expr"].split()), rule["alert"]


def test_replica_tests_fail_without_the_aggregation(tmp_path: Path) -> None:
    """Three replicas exporting the same stored result page once only because the rule
    aggregates away the scrape target's labels: the plain comparison pages three times."""
    text = RULES.read_text()
    grouped = "max by (job, probe, kind, target, ragmon_instance) (ragmon_probe_success) == 0"
    assert grouped in text
    (tmp_path / "ragmon.rules.yaml").write_text(text.replace(grouped, "ragmon_probe_success == 0"))
    shutil.copy(TESTS, tmp_path / "tests.yaml")
    out = promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert out.returncode != 0
    assert "RagmonProbeFailing" in out.stdout + out.stderr


def test_sidecar_tests_fail_when_instances_are_not_counted(tmp_path: Path) -> None:
    """"3 of 10 pods below the floor" is one alert because the rule counts instances: keeping
    ragmon_instance in the grouping makes three alerts, which the unit tests refuse."""
    text = RULES.read_text()
    floor = text.index('(ragmon_recall_ratio{mode="live"}) < 0.5')
    counted = text.rindex("count by (job, probe, kind, target, k) (", 0, floor)
    split = (text[:counted] + "count by (job, probe, kind, target, k, ragmon_instance) ("
             + text[counted + len("count by (job, probe, kind, target, k) ("):])
    (tmp_path / "ragmon.rules.yaml").write_text(split)
    shutil.copy(TESTS, tmp_path / "tests.yaml")
    out = promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert out.returncode != 0
    assert "RagmonRecallBelowFloor" in out.stdout + out.stderr
