"""The docs that are generated or promised stay true."""

from __future__ import annotations

from pathlib import Path

from ragmon.monitor.app import default_plugins
from ragmon.monitor.config.reference import render

ROOT = Path(__file__).resolve().parents[2]


def test_config_reference_is_current() -> None:
    committed = (ROOT / "docs" / "config.md").read_text()
    assert committed == render(default_plugins()), (
        "docs/config.md is stale: run `python -m ragmon.monitor.config.reference > docs/config.md`")


def test_readme_starts_with_the_two_commands_ci_runs() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[2:6] == ["```sh", lines[3], lines[4], "```"]
    assert lines[3].startswith("./scripts/demo ") and lines[4].startswith("./scripts/test ")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "\n./scripts/test\n" in ci
