"""Every metric a shipped Prometheus rule reads exists: a real daemon set up like `ragmon
demo` (FAISS index of the stdlib docs, real MiniLM, canary, recall and index-drift probes,
SQLite) is scraped over its real HTTP listener, and each name the rules read must be in
the exposition, made by Prometheus itself, or declared in code (alerts/rule_metrics.py)
for a feature that config does not have. docs/alerts.md is checked against the scrape too,
never the other way round."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ragmon.alerts import rule_metrics
from ragmon.monitor.config import RootConfig
from ragmon.monitor.http import free_port, http_get
from tests.demo_daemon import running_demo_daemon

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo_scrape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RootConfig, str]]:
    """The config of a daemon set up like the demo, and its /metrics after every probe ran
    on the schedule and once more (tests/demo_daemon.py)."""
    port = free_port()
    with running_demo_daemon(tmp_path_factory.mktemp("demo"), port) as (config, _):
        status, body = http_get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        yield config, body


def exported_names(exposition: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(exposition):
        names |= {sample.name for sample in family.samples}
    return names


def test_every_metric_a_shipped_rule_reads_is_exported_or_declared(
    demo_scrape: tuple[RootConfig, str],
) -> None:
    config, body = demo_scrape
    exported = exported_names(body)
    assert "ragmon_recall_ratio" in exported and "ragmon_probe_success" in exported
    assert rule_metrics.unexplained(exported, config) == {}


def test_the_declared_metrics_are_really_absent(demo_scrape: tuple[RootConfig, str]) -> None:
    """A declaration that no longer holds (the metric is exported now) must be dropped."""
    config, body = demo_scrape
    exported = exported_names(body)
    used = rule_metrics.rule_metric_names()
    for name, cond in rule_metrics.CONDITIONAL.items():
        assert name in used, f"{name} is declared but no rule reads it"
        assert name not in exported and not cond.configured(config), name


def test_a_name_nothing_exports_is_reported(tmp_path: Path,
                                            demo_scrape: tuple[RootConfig, str]) -> None:
    config, body = demo_scrape
    rules = tmp_path / "rules.yaml"
    rules.write_text(rule_metrics.RULES_FILE.read_text().replace(
        "(ragmon_probe_success) == 0", "(ragmon_up) == 0"))
    assert rule_metrics.unexplained(exported_names(body), config, rules) == {
        "ragmon_up": "read by RagmonProbeFailing, exported by nothing"}


def test_the_verdict_k_is_exported_once_per_recall_probe(
    demo_scrape: tuple[RootConfig, str],
) -> None:
    config, body = demo_scrape
    lines = [line for line in body.splitlines() if line.startswith("ragmon_recall_verdict_k{")]
    assert lines == ['ragmon_recall_verdict_k{k="10",kind="recall",probe="docs-recall",'
                     'target="stdlib-docs"} 10.0']


def test_the_metrics_docs_alerts_md_lists_exist(demo_scrape: tuple[RootConfig, str]) -> None:
    """docs/alerts.md tells probe authors which names the rules read: each must be real."""
    config, body = demo_scrape
    doc = (REPO / "docs" / "alerts.md").read_text()
    section = doc.split("### Metrics the rules use", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`(ragmon_[a-z_]+)", section))
    assert listed, "the section lists no metric"
    exported = exported_names(body)
    missing = {n for n in listed if n not in exported and n not in rule_metrics.CONDITIONAL}
    assert missing == set()
    assert set(rule_metrics.rule_metric_names()) - rule_metrics.SCRAPE_SERIES <= listed
