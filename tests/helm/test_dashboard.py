"""The Grafana dashboard (helm/ragmon/dashboards/ragmon.json) against a real Prometheus
server scraping a real ragmon daemon set up like the demo (tests/demo_daemon.py), with the
shipped alert rules loaded: every panel's PromQL, its template variables substituted, parses
and returns data, and every variable's label_values() query finds values.

The demo config gets one more probe whose index file does not exist (a failed run every
2 s) and an in-daemon alert rule on it, so that the alert panels have states to show: the
shipped RagmonProbeFailing goes pending in Prometheus, ragmon's own rule fires.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ragmon.alerts.rule_metrics import RULES_FILE
from ragmon.monitor.http import free_port, http_get
from tests.demo_daemon import running_demo_daemon

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "helm" / "ragmon" / "dashboards" / "ragmon.json"
PROMETHEUS = REPO / ".tools" / "bin" / "prometheus"
#: Grafana's own variables, as Grafana would expand them at a 1 s scrape interval.
BUILTINS = {"$__rate_interval": "15s", "$__interval": "2s", "$__range": "5m"}
VARIABLE = re.compile(r"\$\{?(\w+)\}?")


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def expand(expr: str, values: dict[str, str] | None = None) -> str:
    """A panel's PromQL as Grafana sends it: each variable as ``.*`` (All) or a value."""
    for name, value in BUILTINS.items():
        expr = expr.replace(name, value)
    return VARIABLE.sub(lambda m: (values or {}).get(m.group(1), ".*"), expr)


def test_the_dashboard_is_well_formed() -> None:
    dashboard = load()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("job", "probe", "target", "k"):
        assert variables[name]["type"] == "query"
        assert variables[name]["definition"].startswith("label_values(")
        assert variables[name]["allValue"] == ".*"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
    for panel in panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            used = set(VARIABLE.findall(target["expr"])) - {"__rate_interval"}
            assert used <= set(variables), (panel["title"], used)
    titles = " | ".join(p["title"].lower() for p in panels(dashboard))
    for topic in ("recall", "fidelity", "verdict", "drift statistic", "drift alarms",
                  "coverage gap", "canary cosine", "probe success", "probe duration", "alert"):
        assert topic in titles, topic


#: Gauges read from the shared store: every standalone replica exports the same value.
STORE_GAUGES = ("ragmon_alerts_firing", "ragmon_alerts_pending")


def test_store_gauges_are_not_summed_across_replicas() -> None:
    """R replicas on one PostgreSQL export the same alert counts: a sum shows R times each."""
    exprs = [t["expr"] for p in panels(load()) for t in p.get("targets", [])]
    used = [e for e in exprs if any(g in e for g in STORE_GAUGES)]
    assert used
    for expr in used:
        assert not re.search(r"\bsum\b", expr), expr


def fail_one_probe(raw: dict[str, Any]) -> None:
    raw["targets"]["missing-index"] = {"kind": "faiss", "path": "missing.faiss"}
    raw["probes"]["broken"] = {"kind": "drift", "source": "index", "target": "missing-index",
                               "every": "2s", "jitter": "0s"}
    raw.setdefault("alerts", {}).setdefault("rules", {})["BrokenProbe"] = {
        "probe": "broken", "field": "status", "condition": "!= ok"}


def query(base: str, expr: str) -> dict[str, Any]:
    status, body = http_get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    answer: dict[str, Any] = json.loads(body)
    assert status == 200 and answer["status"] == "success", (expr, body[:300])
    return answer


def wait_until(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus scraping the demo daemon every second, rules evaluated every second;
    yields its base URL once it has several scrapes and the alert rule went pending."""
    data = tmp_path_factory.mktemp("demo")
    port = free_port()
    with running_demo_daemon(data, port, fail_one_probe):
        web = free_port()
        folder = tmp_path_factory.mktemp("prometheus")
        (folder / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES_FILE)],
            "scrape_configs": [{"job_name": "ragmon",
                                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
        }))
        log = (folder / "prometheus.log").open("w")
        server = subprocess.Popen(
            [str(PROMETHEUS), f"--config.file={folder / 'prometheus.yml'}",
             f"--storage.tsdb.path={folder / 'tsdb'}", f"--web.listen-address=127.0.0.1:{web}"],
            stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{web}"
        try:
            wait_until("Prometheus to answer", lambda: _ready(base))
            wait_until("three scrapes of ragmon", lambda: query(
                base, 'count_over_time(up{job="ragmon"}[1m]) >= 3 and up{job="ragmon"} == 1'
            )["data"]["result"])
            wait_until("the shipped rule on the failing probe", lambda: query(
                base, 'ALERTS{alertname="RagmonProbeFailing", probe="broken"}'
            )["data"]["result"])
            yield base
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()


def _ready(base: str) -> bool:
    try:
        return http_get(base + "/-/ready")[0] == 200
    except OSError:
        return False


def test_every_panel_query_returns_data(prometheus: str) -> None:
    empty = []
    for panel in panels(load()):
        for target in panel["targets"]:
            expr = expand(target["expr"])
            if not query(prometheus, expr)["data"]["result"]:
                empty.append(f"{panel['title']}: {expr}")
    assert empty == []


def test_every_variable_finds_values(prometheus: str) -> None:
    """``label_values(METRIC{...}, LABEL)`` as Grafana's Prometheus source runs it: the
    label's values on the series that match."""
    for variable in load()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["definition"])
        assert match, variable["definition"]
        selector, label = expand(match.group(1)), match.group(2)
        status, body = http_get(f"{prometheus}/api/v1/label/{label}/values?"
                                + urllib.parse.urlencode({"match[]": selector}))
        values = json.loads(body)["data"]
        assert status == 200 and values, variable["name"]
        if variable["name"] == "k":
            assert "10" in values


def test_a_chosen_probe_and_k_narrow_the_recall_panel(prometheus: str) -> None:
    [panel] = [p for p in panels(load()) if p["title"] == "Recall@k (live search)"]
    expr = expand(panel["targets"][0]["expr"],
                  {"job": "ragmon", "probe": "docs-recall", "target": ".*", "k": "10"})
    result = query(prometheus, expr)["data"]["result"]
    assert [(r["metric"]["probe"], r["metric"]["k"], r["metric"]["mode"]) for r in result] \
        == [("docs-recall", "10", "live")]
    assert 0 < float(result[0]["value"][1]) <= 1
