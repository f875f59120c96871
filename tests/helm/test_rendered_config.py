"""The config the chart renders is a config ragmon accepts and runs: the files the pod would
mount (ConfigMap, golden set ConfigMap, Secret, volumes) are written under a temporary folder
with the pod's paths remapped into it, `ragmon check-config --strict` passes, and a real
`ragmon run` answers /healthz and /readyz on the listener the kubelet probes use, bound to
every interface, then exits 0 on SIGTERM."""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from ragmon.monitor.http import free_port, http_get
from tests.helm.chart_support import CHART, by_kind, load_values, manifests, render

#: Paths inside the pod -> folder names under the test's temporary folder.
POD_PATHS = {"/etc/ragmon/config": "config", "/etc/ragmon/golden": "golden",
             "/etc/ragmon/secrets": "secrets", "/var/lib/ragmon": "data",
             "/data/index": "index"}


def remap(text: str, root: Path) -> str:
    for pod_path, folder in POD_PATHS.items():
        text = text.replace(pod_path + "/", f"{root / folder}/")
    return text


def write_pod_files(objects: list[dict[str, Any]], root: Path, port: int) -> Path:
    """The mounted files of the pod, under ``root``; returns the config file."""
    for folder in POD_PATHS.values():
        (root / folder).mkdir()
    config_text = ""
    for cm in by_kind(objects, "ConfigMap"):
        if cm["metadata"]["name"].endswith("-config"):
            config_text = cm["data"]["ragmon.yaml"]
        elif cm["metadata"]["name"].endswith("-golden"):
            for name, content in cm["data"].items():
                (root / "golden" / name).write_text(content)
    for secret in by_kind(objects, "Secret"):
        for key, value in secret["data"].items():
            (root / "secrets" / key).write_bytes(base64.b64decode(value))
    assert config_text, "no config ConfigMap rendered"
    assert "listen: 0.0.0.0:9464" in config_text
    config = root / "config" / "ragmon.yaml"
    config.write_text(remap(config_text, root).replace("0.0.0.0:9464", f"0.0.0.0:{port}"))
    return config


def write_index(folder: Path) -> None:
    """A small FAISS index where the standalone values' target expects the app's index."""
    import faiss

    vectors = np.random.default_rng(0).standard_normal((8, 384)).astype(np.float32)
    faiss.normalize_L2(vectors)
    index = faiss.IndexFlatIP(384)
    index.add(vectors)
    faiss.write_index(index, str(folder / "index.faiss"))
    (folder / "index.ids").write_text("".join(f"{i}\n" for i in ["open", "json.loads", *"abcdef"]))


def listening_on_every_interface(pid: int, port: int) -> bool:
    """The process has a listening TCP socket on 0.0.0.0:port (read from /proc)."""
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A" and local == f"00000000:{port:04X}":
            return True
    return False


def ragmon(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ragmon.monitor", *args], capture_output=True,
                          text=True, timeout=120, env=env)


@pytest.fixture(params=["standalone-sqlite", "postgresql"])
def pod_files(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    values = load_values(CHART / "ci" / f"{request.param}-values.yaml")
    if request.param == "postgresql":
        # the Secret holds the URL of a real PostgreSQL in place of the example's
        url = request.getfixturevalue("postgres_server_url")
        values["secrets"]["values"]["database-url"] = url
    objects = manifests(render(values))
    port = free_port()
    config = write_pod_files(objects, tmp_path, port)
    if request.param == "standalone-sqlite":
        write_index(tmp_path / "index")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAGMON_SERVER__SHUTDOWN_GRACE": "2s"}
    [deployment] = by_kind(objects, "Deployment")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env.update({e["name"]: remap(e["value"] + "/", tmp_path).removesuffix("/")
                for e in container["env"] if e["name"] in ("RAGMON_CONFIG",)})
    assert env["RAGMON_CONFIG"] == str(config)
    return config, env


@pytest.mark.slow
def test_the_rendered_config_passes_check_config_and_runs(
        pod_files: tuple[Path, dict[str, str]]) -> None:
    config, env = pod_files
    checked = ragmon("check-config", "--strict", str(config), env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    port = int(yaml.safe_load(config.read_text())["server"]["listen"].rpartition(":")[2])
    # the container's args: run, reading the config the RAGMON_CONFIG variable names too
    proc = subprocess.Popen([sys.executable, "-m", "ragmon.monitor", "run"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        ready = (0, "")
        while time.monotonic() < deadline and proc.poll() is None:
            health = http_get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            ready = http_get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            if health[0] == 200 and ready[0] == 200:
                break
            time.sleep(0.5)
        assert proc.poll() is None, f"ragmon run exited: {proc.communicate()[1][-2000:]}"
        assert ready[0] == 200, ready
        assert listening_on_every_interface(proc.pid, port), \
            "the listener the kubelet probes must be bound to every interface"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]


def test_the_sidecar_config_passes_check_config(tmp_path: Path) -> None:
    objects = manifests(render(load_values(CHART / "ci" / "sidecar-values.yaml")))
    config = write_pod_files(objects, tmp_path, free_port())
    # the existing Secret the values name, as the kubelet would mount it
    (tmp_path / "secrets" / "database-url").write_text("postgresql://ragmon@db/ragmon\n")
    write_index(tmp_path / "index")
    # POD_NAME from the downward API names this sidecar's instance
    env = {k: v for k, v in os.environ.items() if k not in ("POD_NAME", "HOSTNAME")}
    checked = ragmon("check-config", "--strict", str(config), env=env)
    assert checked.returncode == 2 and "deployment" in checked.stdout + checked.stderr
    checked = ragmon("check-config", "--strict", str(config), env={**env, "POD_NAME": "rag-api-0"})
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_documented_values_example_renders_a_valid_config(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "kubernetes.md").read_text()
    found = re.search(r"<!-- values:pgvector -->\s*```yaml\n(.*?)```", text, re.S)
    assert found, "docs/kubernetes.md has no <!-- values:pgvector --> block"
    objects = manifests(render(yaml.safe_load(found.group(1))))
    config = write_pod_files(objects, tmp_path, free_port())
    # the existing ConfigMap and Secret the example names, as the kubelet would mount them
    (tmp_path / "secrets" / "vectors-url").write_text("postgresql://ragmon@db:5432/rag\n")
    (tmp_path / "golden" / "questions.jsonl").write_text(
        '{"id": "q1", "query": "reset my password", "relevant": {"kb/password#0": 1}}\n')
    checked = ragmon("check-config", "--strict", str(config), env=dict(os.environ))
    assert checked.returncode == 0, checked.stdout + checked.stderr
