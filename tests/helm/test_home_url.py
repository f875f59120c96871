"""The project's home URL is one value, pyproject's [project.urls] Homepage: the chart's
`home` and `sources`, the image's source label, the Documentation URL and every runbook link
of the shipped rules (and of their promtool tests) derive from it."""

from __future__ import annotations

import re
import tomllib

import yaml

from tests.helm.chart_support import CHART, REPO, RULES


def home() -> str:
    urls = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]
    assert urls["Documentation"].startswith(urls["Homepage"] + "/")
    return str(urls["Homepage"])


def test_the_chart_and_the_image_name_the_same_home() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["home"] == home()
    assert chart["sources"] == [home()]
    label = re.search(r'org\.opencontainers\.image\.source="([^"]+)"',
                      (REPO / "Dockerfile").read_text())
    assert label and label.group(1) == home()


def test_every_runbook_link_is_the_home_url_and_an_existing_runbook() -> None:
    links = re.findall(r"runbook_url: (\S+)", RULES.read_text())
    links += re.findall(r"runbook_url: (\S+)", (RULES.parent / "tests.yaml").read_text())
    assert links
    base = f"{home()}/blob/main/"
    for link in links:
        assert link.startswith(base), f"{link} does not start with {base}"
        assert (REPO / link.removeprefix(base)).is_file(), f"{link}: no such file"


def test_the_chart_ships_this_version_of_ragmon() -> None:
    from ragmon.monitor import __version__

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert chart["appVersion"] == version == __version__
