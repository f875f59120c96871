"""The Helm chart, rendered offline by the Helm library for every ci/*-values.yaml, linted
strictly, and every manifest validated against Kubernetes' strict schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.chart_support import (
    CHART,
    CI_VALUES,
    by_kind,
    load_values,
    manifests,
    one,
    render,
    validate,
)


def test_every_documented_mode_has_ci_values() -> None:
    assert {p.name for p in CI_VALUES} == {
        "standalone-sqlite-values.yaml", "postgresql-values.yaml", "monitoring-values.yaml",
        "sidecar-values.yaml"}


def test_the_chart_lints_strictly() -> None:
    import helm_python as helm

    helm.disable_logging()
    for values in [None, *CI_VALUES]:
        report = helm.lint(str(CHART), load_values(values) if values else None, strict=True,
                           kube_version="v1.29.0")
        problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
        assert not problems, f"{values}: {problems}"


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda p: p.name if p else "defaults")
def test_every_rendered_manifest_is_valid(values: Path | None) -> None:
    objects = manifests(render(load_values(values) if values else None))
    assert objects
    for obj in objects:
        validate(obj)
    kinds = {o["kind"] for o in objects}
    assert {"ConfigMap", "Service", "ServiceAccount"} <= kinds


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    [main] = pod["containers"]
    return main  # type: ignore[no-any-return]


def rendered_config(objects: list[dict[str, Any]]) -> dict[str, Any]:
    [cm] = [o for o in by_kind(objects, "ConfigMap") if o["metadata"]["name"].endswith("-config")]
    return yaml.safe_load(cm["data"]["ragmon.yaml"])  # type: ignore[no-any-return]


def test_standalone_sqlite_is_one_pod_on_a_volume() -> None:
    objects = manifests(render({**load_values(CI_VALUES_BY["standalone-sqlite"]),
                                "replicaCount": 3}))
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pvc = one(objects, "PersistentVolumeClaim")
    assert pvc["spec"]["resources"]["requests"]["storage"] == "5Gi"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["ragmon-data"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    mounts = {m["name"]: m["mountPath"] for m in container(objects)["volumeMounts"]}
    assert mounts["ragmon-data"] == "/var/lib/ragmon"
    assert rendered_config(objects)["store"]["url"] == "sqlite:////var/lib/ragmon/ragmon.db"
    notes = render({"replicaCount": 3})["ragmon/templates/NOTES.txt"]
    assert "replicaCount=3 was ignored" in notes


def test_without_persistence_the_notes_warn_that_history_is_lost() -> None:
    rendered = render({"persistence": {"enabled": False}})
    assert not by_kind(manifests(rendered), "PersistentVolumeClaim")
    assert "history, baselines\nand alert states are lost" in rendered["ragmon/templates/NOTES.txt"]


def test_postgresql_runs_replicas_and_reads_its_url_from_a_mounted_secret() -> None:
    objects = manifests(render(load_values(CI_VALUES_BY["postgresql"])))
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert not by_kind(objects, "PersistentVolumeClaim")
    assert rendered_config(objects)["store"] == {
        "retention": "30d", "url": {"file": "/etc/ragmon/secrets/database-url"}}
    secret = one(objects, "Secret")
    assert set(secret["data"]) == {"database-url"}
    mounts = {m["name"]: m for m in container(objects)["volumeMounts"]}
    assert mounts["ragmon-secrets"]["mountPath"] == "/etc/ragmon/secrets"
    assert all("postgresql://" not in str(e) for e in container(objects)["env"])
    assert "checksum/config" not in (deployment["spec"]["template"]["metadata"]
                                     .get("annotations") or {})


def test_an_existing_secret_and_golden_set_configmap_are_mounted_instead() -> None:
    objects = manifests(render({
        "database": {"type": "postgresql"}, "secrets": {"existingSecret": "ragmon-db"},
        "goldenSets": {"existingConfigMap": "team-golden"}}))
    assert not by_kind(objects, "Secret")
    assert len(by_kind(objects, "ConfigMap")) == 1
    volumes = {v["name"]: v for v in one(objects, "Deployment")["spec"]["template"]["spec"]
               ["volumes"]}
    assert volumes["ragmon-secrets"]["secret"]["secretName"] == "ragmon-db"
    assert volumes["ragmon-golden"]["configMap"]["name"] == "team-golden"


def test_probes_and_service_use_the_metrics_port_on_every_interface() -> None:
    objects = manifests(render(load_values(CI_VALUES_BY["standalone-sqlite"])))
    main = container(objects)
    assert main["name"] == "ragmon"
    assert main["ports"] == [{"name": "metrics", "containerPort": 9464, "protocol": "TCP"}]
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert main["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert rendered_config(objects)["server"]["listen"] == "0.0.0.0:9464"
    service = one(objects, "Service")
    assert service["spec"]["ports"][0]["name"] == "metrics"
    assert service["spec"]["selector"] == one(objects, "Deployment")["spec"]["selector"][
        "matchLabels"]
    moved = manifests(render({"service": {"port": 9100}}))
    assert rendered_config(moved)["server"]["listen"] == "0.0.0.0:9100"
    assert container(moved)["ports"][0]["containerPort"] == 9100


def test_the_pod_is_locked_down_with_writable_mounts_only() -> None:
    objects = manifests(render())
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    ctx = container(objects)["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True and ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False  # Service variables would share RAGMON_*
    env = {e["name"]: e.get("value") for e in container(objects)["env"]}
    writable = {m["mountPath"] for m in container(objects)["volumeMounts"]
                if not m.get("readOnly")}
    assert writable == {"/var/lib/ragmon", "/tmp"}
    for var in ("HOME", "XDG_CACHE_HOME", "MPLCONFIGDIR"):
        assert any(env[var].startswith(w) for w in writable), var
    assert env["HF_HUB_OFFLINE"] == "1"
    resources = container(objects)["resources"]
    assert resources["requests"]["memory"] and resources["limits"]["memory"]


def test_a_config_change_rolls_the_pods() -> None:
    def checksum(values: dict[str, Any]) -> str:
        deployment = one(manifests(render(values)), "Deployment")
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    base = load_values(CI_VALUES_BY["standalone-sqlite"])
    changed = yaml.safe_load(yaml.safe_dump(base))
    changed["config"]["probes"]["canary"]["every"] = "1m"
    assert checksum(base) == checksum(yaml.safe_load(yaml.safe_dump(base)))
    assert checksum(base) != checksum(changed)


def test_monitoring_objects_carry_the_kube_prometheus_stack_labels() -> None:
    objects = manifests(render(load_values(CI_VALUES_BY["monitoring"])))
    monitor = one(objects, "ServiceMonitor")
    rule = one(objects, "PrometheusRule")
    for obj in (monitor, rule):
        assert obj["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    service_labels = one(objects, "Service")["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service_labels.items()
    # the shipped rules select job="ragmon": the job label is the Service's name label
    assert one(objects, "Service")["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "ragmon"
    dashboards = [o for o in by_kind(objects, "ConfigMap")
                  if o["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert len(dashboards) == 1
    assert dashboards[0]["data"]["ragmon.json"] == (CHART / "dashboards" / "ragmon.json"
                                                    ).read_text().rstrip("\n")
    assert not {"ServiceMonitor", "PrometheusRule"} & {o["kind"] for o in manifests(render())}


@pytest.mark.parametrize(("values", "message"), [
    ({"replicaCount": 0}, "at '/replicaCount': minimum: got 0, want 1"),
    ({"database": {"type": "mysql"}},
     "at '/database/type': value must be one of 'sqlite', 'postgresql'"),
    ({"imageTag": "1.0"}, "additional properties 'imageTag' not allowed"),
    ({"service": {"port": "9464"}}, "at '/service/port': got string, want integer"),
    ({"secrets": {"values": {"db/url": "x"}}}, "'db/url' does not match pattern"),
    ({"persistence": {"size": "lots"}}, "at '/persistence/size'"),
    ({"serviceMonitor": {"enabled": True, "interval": "often"}}, "at '/serviceMonitor/interval'"),
])
def test_values_that_break_the_schema_fail_naming_the_key(values: dict[str, Any],
                                                          message: str) -> None:
    import helm_python as helm

    with pytest.raises(helm.HelmValuesError) as err:
        render(values)
    assert "values don't meet the specifications of the schema" in str(err.value)
    assert message in str(err.value)


@pytest.mark.parametrize(("values", "message"), [
    ({"config": {"server": {"listen": "127.0.0.1:9464"}}},
     "config.server.listen is set by the chart"),
    ({"config": {"store": {"url": "sqlite:///x.db"}}}, "config.store.url is set by the chart"),
    ({"database": {"type": "postgresql"}},
     'database.type=postgresql reads the URL from the Secret key "database-url"'),
    ({"database": {"type": "postgresql"}, "secrets": {"values": {"other": "x"}}},
     'secrets.values has no key "database-url"'),
    # sidecar mode: every pod of the host Deployment would mount the one SQLite claim
    ({"deployment": {"enabled": False}},
     "deployment.enabled=false .sidecar mode. with database.type=sqlite"),
])
def test_values_the_chart_owns_fail_with_what_to_do(values: dict[str, Any], message: str) -> None:
    import helm_python as helm

    with pytest.raises(helm.HelmRenderError, match=message):
        render(values)


CI_VALUES_BY = {p.name.removesuffix("-values.yaml"): p for p in CI_VALUES}
