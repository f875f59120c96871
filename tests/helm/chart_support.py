"""Rendering the chart offline with the Helm library (helm-python-sdk, no helm binary) and
checking what it renders: kubernetes-validate's strict schemas for built-in kinds, structural
checks for the Prometheus Operator's CRDs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "ragmon"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RULES = REPO / "alerts" / "rules" / "ragmon.rules.yaml"
#: The Kubernetes version the manifests are validated against: the oldest the chart supports
#: with native sidecars (init containers with restartPolicy: Always).
KUBE_VERSION = "1.29.0"
RELEASE = "rag"
NAMESPACE = "ai"


def load_values(path: Path) -> dict[str, Any]:
    values = yaml.safe_load(path.read_text())
    assert isinstance(values, dict), f"{path}: not a mapping"
    return values


def render(values: dict[str, Any] | None = None, chart: Path = CHART) -> dict[str, str]:
    """Template path -> rendered text (NOTES.txt included), as `helm template` would."""
    import helm_python as helm

    helm.disable_logging()  # the rules link is reported at INFO on every load
    with helm.Chart.load(str(chart)) as loaded:
        return loaded.render(values or {}, name=RELEASE, namespace=NAMESPACE)


def manifests(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object rendered (NOTES.txt and empty templates left out)."""
    found = []
    for path, text in rendered.items():
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                assert isinstance(doc, dict), f"{path}: not an object"
                found.append(doc)
    return found


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def validate(obj: dict[str, Any]) -> None:
    """Strict schema validation (unknown fields are errors) of a built-in kind; the
    Prometheus Operator's kinds are checked by their own functions below."""
    import kubernetes_validate

    if obj["apiVersion"] == "monitoring.coreos.com/v1":
        CRD_CHECKS[obj["kind"]](obj)
        return
    kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def _metadata(obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    assert set(meta) <= {"name", "labels", "annotations"}, meta
    assert meta["name"] and len(meta["name"]) <= 63
    assert all(isinstance(v, str) for v in meta.get("labels", {}).values())


def _service_monitor(obj: dict[str, Any]) -> None:
    """The fields of monitoring.coreos.com/v1 ServiceMonitor that the chart sets, with the
    types the CRD's schema gives them."""
    _metadata(obj)
    spec = obj["spec"]
    assert set(spec) <= {"jobLabel", "selector", "namespaceSelector", "endpoints"}, spec
    assert isinstance(spec["jobLabel"], str)
    assert set(spec["selector"]) == {"matchLabels"}
    assert all(isinstance(v, str) for v in spec["selector"]["matchLabels"].values())
    assert all(isinstance(n, str) for n in spec["namespaceSelector"]["matchNames"])
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout"}, endpoint
        assert all(isinstance(v, str) for v in endpoint.values())


def _prometheus_rule(obj: dict[str, Any]) -> None:
    """monitoring.coreos.com/v1 PrometheusRule: spec.groups[] of {name, rules[]}, each rule
    an alert or a record with a string expr, string labels and annotations."""
    _metadata(obj)
    assert set(obj["spec"]) == {"groups"}
    for group in obj["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and isinstance(group["name"], str)
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "record", "expr", "for", "labels", "annotations"}
            assert ("alert" in rule) != ("record" in rule), rule
            assert isinstance(rule["expr"], str | int)
            for key in ("labels", "annotations"):
                assert all(isinstance(v, str) for v in rule.get(key, {}).values()), rule


CRD_CHECKS = {"ServiceMonitor": _service_monitor, "PrometheusRule": _prometheus_rule}


def host_chart(folder: Path, pod_spec_containers: str) -> Path:
    """A RAG app's chart with ragmon as a dependency (charts/ragmon, a copy of this chart with
    its rules link resolved), whose Deployment renders the ragmon container from the
    ragmon.sidecar template in its subchart's scope."""
    host = folder / "rag-api"
    (host / "templates").mkdir(parents=True)
    shutil.copytree(CHART, host / "charts" / "ragmon", symlinks=False)
    (host / "Chart.yaml").write_text(
        "apiVersion: v2\nname: rag-api\nversion: 1.0.0\n"
        "dependencies:\n  - name: ragmon\n    version: 0.1.0\n")
    (host / "templates" / "deployment.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: rag-api\nspec:\n"
        "  selector:\n    matchLabels: {app.kubernetes.io/name: rag-api}\n"
        "  template:\n    metadata:\n      labels: {app.kubernetes.io/name: rag-api}\n"
        "    spec:\n" + pod_spec_containers +
        "      volumes:\n"
        "        - name: index\n"
        "          persistentVolumeClaim: {claimName: rag-index}\n"
        "        {{- include \"ragmon.volumes\" .Subcharts.ragmon | nindent 8 }}\n")
    return host
