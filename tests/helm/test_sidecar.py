"""Sidecar mode: a RAG app's chart that depends on ragmon renders the ragmon container in its
own pods from the ragmon.sidecar template (in containers, or as a native sidecar in
initContainers), and the snippet docs/kubernetes.md gives for charts with an extraContainers
value is that same container."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.helm.chart_support import (
    CHART,
    REPO,
    by_kind,
    host_chart,
    load_values,
    manifests,
    one,
    render,
    validate,
)

SIDECAR_VALUES = CHART / "ci" / "sidecar-values.yaml"
IN_CONTAINERS = ("      containers:\n        - name: api\n          image: rag-api:1\n"
                 "        - {{- include \"ragmon.sidecar\" .Subcharts.ragmon | nindent 10 }}\n")
IN_INIT_CONTAINERS = (
    "      initContainers:\n"
    "        - {{- include \"ragmon.sidecar\" .Subcharts.ragmon | nindent 10 }}\n"
    "      containers:\n        - name: api\n          image: rag-api:1\n")


def host_pod(tmp_path: Path, containers: str, ragmon_values: dict[str, Any]) -> dict[str, Any]:
    objects = manifests(render({"ragmon": ragmon_values}, chart=host_chart(tmp_path, containers)))
    for obj in objects:
        validate(obj)
    [app] = [d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "rag-api"]
    assert len(by_kind(objects, "Deployment")) == 1, "deployment.enabled=false renders none"
    return app["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def mounts_resolve(pod: dict[str, Any], container: dict[str, Any]) -> None:
    volumes = {v["name"] for v in pod["volumes"]}
    assert {m["name"] for m in container["volumeMounts"]} <= volumes


def test_a_native_sidecar_is_an_init_container_that_keeps_running(tmp_path: Path) -> None:
    pod = host_pod(tmp_path, IN_INIT_CONTAINERS, load_values(SIDECAR_VALUES))
    [ragmon] = pod["initContainers"]
    assert {m["mountPath"] for m in ragmon["volumeMounts"]} >= {"/data/index",
                                                               "/etc/ragmon/secrets"}
    assert ragmon["name"] == "ragmon" and ragmon["restartPolicy"] == "Always"
    env = {e["name"]: e for e in ragmon["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert ragmon["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    mounts_resolve(pod, ragmon)


def test_a_plain_sidecar_is_a_second_container(tmp_path: Path) -> None:
    values = {**load_values(SIDECAR_VALUES), "sidecar": {"native": False}}
    pod = host_pod(tmp_path, IN_CONTAINERS, values)
    [ragmon] = [c for c in pod["containers"] if c["name"] == "ragmon"]
    assert "restartPolicy" not in ragmon
    mounts_resolve(pod, ragmon)


def test_the_sidecar_service_selects_the_app_pods() -> None:
    objects = manifests(render(load_values(SIDECAR_VALUES)))
    assert not by_kind(objects, "Deployment")
    assert one(objects, "Service")["spec"]["selector"] == {"app.kubernetes.io/name": "rag-api"}


def documented(kind: str) -> Any:
    """The YAML block of docs/kubernetes.md that follows the marker <!-- sidecar:KIND -->."""
    text = (REPO / "docs" / "kubernetes.md").read_text()
    found = re.search(rf"<!-- sidecar:{kind} -->\s*```yaml\n(.*?)```", text, re.S)
    assert found, f"docs/kubernetes.md has no <!-- sidecar:{kind} --> block"
    return yaml.safe_load(found.group(1))


def test_the_documented_snippet_is_the_rendered_sidecar(tmp_path: Path) -> None:
    plain = host_pod(tmp_path / "plain", IN_CONTAINERS,
                     {**load_values(SIDECAR_VALUES), "sidecar": {"native": False}})
    native = host_pod(tmp_path / "native", IN_INIT_CONTAINERS, load_values(SIDECAR_VALUES))
    [container] = [c for c in plain["containers"] if c["name"] == "ragmon"]
    assert documented("extraContainers") == {"extraContainers": [container]}
    # the native variant is the same container with restartPolicy: Always
    assert native["initContainers"] == [{**container, "restartPolicy": "Always"}]
    ragmon_volumes = [v for v in plain["volumes"] if v["name"].startswith("ragmon-")]
    assert documented("volumes") == {"extraVolumes": ragmon_volumes}


def test_the_port_can_be_renamed_when_the_app_has_a_metrics_port(tmp_path: Path) -> None:
    values = {**load_values(SIDECAR_VALUES), "sidecar": {"native": False},
              "service": {"portName": "ragmon-metrics",
                          "selector": {"app.kubernetes.io/name": "rag-api"}}}
    pod = host_pod(tmp_path, IN_CONTAINERS, values)
    [ragmon] = [c for c in pod["containers"] if c["name"] == "ragmon"]
    assert ragmon["ports"][0]["name"] == "ragmon-metrics"
    assert {p["httpGet"]["port"] for p in (ragmon["livenessProbe"], ragmon["readinessProbe"],
                                           ragmon["startupProbe"])} == {"ragmon-metrics"}
    objects = manifests(render(values))
    assert one(objects, "Service")["spec"]["ports"][0]["targetPort"] == "ragmon-metrics"
    assert one(objects, "ServiceMonitor")["spec"]["endpoints"][0]["port"] == "ragmon-metrics"


def test_the_documented_sidecar_values_are_the_ci_values() -> None:
    text = (REPO / "docs" / "kubernetes.md").read_text()
    found = re.search(r"<!-- values:sidecar -->\s*```yaml\n(.*?)```", text, re.S)
    assert found, "docs/kubernetes.md has no <!-- values:sidecar --> block"
    assert yaml.safe_load(found.group(1)) == load_values(SIDECAR_VALUES)


def test_the_sidecar_notes_name_no_deployment_of_the_chart() -> None:
    notes = render(load_values(SIDECAR_VALUES))["ragmon/templates/NOTES.txt"]
    assert "deploy/" not in notes  # the chart renders no Deployment in sidecar mode
    assert "exec POD -c ragmon -- ragmon probe PROBE --once" in notes
