"""The kubectl and helm commands that the runbooks, docs/kubernetes.md and the chart's NOTES.txt
tell people to type name what the chart really creates: the container `ragmon`, the pod
labels, the Deployment, Service, ConfigMap and ServiceMonitor names, the `metrics` port, the
config path the pod mounts; and the ragmon command run inside the pod parses."""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest

from tests.helm.chart_support import NAMESPACE, RELEASE, REPO, manifests, one, render

#: What the runbooks' placeholders stand for (the release the tests render).
PLACEHOLDERS = {"<namespace>": NAMESPACE, "<release>": RELEASE, "<app>": "rag-api",
                "<probe>": "docs-recall", "PROBE": "docs-recall"}
SOURCES = [*sorted((REPO / "docs" / "runbooks").glob("*.md")), REPO / "docs" / "kubernetes.md",
           REPO / "README.md", REPO / "helm" / "ragmon" / "README.md"]


def quoted_commands(text: str) -> list[str]:
    # a command, not a mention such as `helm upgrade`
    found = [c for c in re.findall(r"`((?:kubectl|helm) [^`]+)`", text) if len(c.split()) > 2]
    found += [line.split("#")[0].strip().rstrip("\\").strip() for line in text.splitlines()
              if line.strip().startswith(("kubectl ", "helm "))]  # lines of ```sh blocks
    return found


def commands() -> list[tuple[str, str]]:
    found = [(p.name, c) for p in SOURCES for c in quoted_commands(p.read_text())]
    notes = render({"serviceMonitor": {"enabled": True}})["ragmon/templates/NOTES.txt"]
    found += [("NOTES.txt", line.strip()) for line in notes.splitlines()
              if line.strip().startswith("kubectl ")]
    return found


def test_the_runbooks_and_docs_quote_kubernetes_commands() -> None:
    sources = {source for source, _ in commands()}
    assert {"RagmonDown.md", "RagmonAbsent.md", "RagmonProbeFailing.md", "kubernetes.md",
            "README.md", "NOTES.txt"} <= sources


def chart_objects() -> dict[str, Any]:
    objects = manifests(render({"serviceMonitor": {"enabled": True}}))
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]
    [container] = pod["spec"]["containers"]
    return {
        "container": container["name"],
        "pod_labels": pod["metadata"]["labels"],
        "deploy": {deployment["metadata"]["name"], "rag-api"},
        "svc": {one(objects, "Service")["metadata"]["name"]},
        "configmap": {o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"},
        "servicemonitor": {one(objects, "ServiceMonitor")["metadata"]["name"]},
        "pvc": {one(objects, "PersistentVolumeClaim")["metadata"]["name"]},
        "ports": {p["name"] for p in one(objects, "Service")["spec"]["ports"]},
        "mounts": [m["mountPath"] for m in container["volumeMounts"]],
    }


def option(words: list[str], *names: str) -> str | None:
    for i, word in enumerate(words):
        if word in names:
            return words[i + 1]
        for name in names:
            if name.startswith("--") and word.startswith(name + "="):
                return word.split("=", 1)[1]
    return None


@pytest.mark.parametrize(("source", "command"), commands(),
                         ids=[f"{s}:{c[:60]}" for s, c in commands()])
def test_a_command_names_what_the_chart_creates(source: str, command: str) -> None:
    from ragmon.monitor.app import default_plugins
    from ragmon.monitor.cli import build_parser

    chart = chart_objects()
    for placeholder, value in PLACEHOLDERS.items():
        command = command.replace(placeholder, value)
    words = shlex.split(command)
    inside: list[str] = []
    if "--" in words:
        words, inside = words[:words.index("--")], words[words.index("--") + 1:]
    if words[0] == "helm":
        rest = [w for i, w in enumerate(words[1:], 1)
                if not w.startswith("-") and words[i - 1] not in ("-n", "--namespace")]
        assert rest[0] in ("install", "upgrade", "status", "test", "uninstall"), command
        assert rest[1] == RELEASE, f"{source}: `{command}` names another release"
        return
    if option(words, "-n", "--namespace") is not None:
        assert option(words, "-n", "--namespace") == NAMESPACE
    container = option(words, "-c", "--container")
    if container is not None:
        assert container == chart["container"], f"{source}: no container {container!r}"
    selector = option(words, "-l", "--selector")
    if selector is not None:
        for pair in selector.split(","):
            key, _, value = pair.partition("=")
            assert chart["pod_labels"].get(key) == value, f"{source}: pods have no {pair}"
    for word in words:
        kind, slash, name = word.partition("/")
        if slash and kind in ("deploy", "svc"):
            assert name in chart[kind], f"{source}: no {kind} {name!r}"
        if re.fullmatch(r"\d+:[a-z]+", word):
            assert word.split(":")[1] in chart["ports"], f"{source}: no port {word}"
    for kind in ("configmap", "servicemonitor", "pvc"):
        if kind in words and words.index(kind) + 1 < len(words):
            name = words[words.index(kind) + 1]
            if not name.startswith("-"):
                assert name in chart[kind], f"{source}: no {kind} {name!r}"
    for path in (w for w in inside if w.startswith(("/var/lib/ragmon", "/etc/ragmon"))):
        assert any(path == m or path.startswith(m + "/") for m in chart["mounts"]), path
    if inside and inside[0] == "ragmon":
        build_parser(default_plugins()).parse_args(inside[1:])
