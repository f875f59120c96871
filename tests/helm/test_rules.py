"""The PrometheusRule the chart renders is the shipped rules file, one source: the chart's
files/ragmon.rules.yaml links to alerts/rules/ragmon.rules.yaml, and what Prometheus gets from
the rendered object passes promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.helm.chart_support import CHART, RULES, manifests, one, render


def rendered_rule() -> dict:  # type: ignore[type-arg]
    return one(manifests(render({"prometheusRule": {"enabled": True}})), "PrometheusRule")


def test_the_chart_reads_the_rules_through_a_link_to_the_alerts_file() -> None:
    link = CHART / "files" / "ragmon.rules.yaml"
    assert link.is_symlink(), "keep one source: files/ragmon.rules.yaml must be a link"
    assert link.resolve() == RULES.resolve()


def test_the_rendered_rule_is_the_alerts_file() -> None:
    assert rendered_rule()["spec"] == yaml.safe_load(RULES.read_text())


def test_promtool_accepts_the_rules_taken_from_the_rendered_object(promtool: str,
                                                                   tmp_path: Path) -> None:
    spec = rendered_rule()["spec"]
    extracted = tmp_path / "rules.yaml"
    extracted.write_text(yaml.safe_dump(spec, sort_keys=False))
    done = subprocess.run([promtool, "check", "rules", str(extracted)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    alerts = sum(1 for g in spec["groups"] for r in g["rules"] if "alert" in r)
    assert f"{alerts + sum(1 for g in spec['groups'] for r in g['rules'] if 'record' in r)} " \
           "rules found" in done.stdout


def test_a_packaged_chart_carries_the_rules_not_the_link(tmp_path: Path) -> None:
    import helm_python as helm

    helm.disable_logging()
    archive = helm.package(str(CHART), destination=str(tmp_path))
    unpacked = tmp_path / "unpacked"
    helm.expand(str(unpacked), archive)
    packaged = unpacked / "ragmon" / "files" / "ragmon.rules.yaml"
    assert not packaged.is_symlink()
    assert packaged.read_text() == RULES.read_text()
    objects = manifests(render({"prometheusRule": {"enabled": True}}, chart=unpacked / "ragmon"))
    assert one(objects, "PrometheusRule")["spec"] == yaml.safe_load(RULES.read_text())
