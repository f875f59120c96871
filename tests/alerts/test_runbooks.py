"""The commands the runbooks tell an on-call person to type are real ``ragmon`` commands:
each one parses with this install's own command line."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from ragmon.monitor.app import default_plugins
from ragmon.monitor.cli import build_parser

RUNBOOKS = Path(__file__).resolve().parents[2] / "docs" / "runbooks"
#: What the runbooks' placeholders stand for.
PLACEHOLDERS = {"<probe>": "docs-recall", "<canary>": "canary", "<email-sink>": "mail",
                "RUN_ID": "42", "PROBE": "query-drift"}


def commands() -> list[tuple[str, str]]:
    found = []
    for runbook in sorted(RUNBOOKS.glob("*.md")):
        for command in re.findall(r"`(ragmon [^`]+)`", runbook.read_text()):
            found.append((runbook.name, command))
    return found


def test_the_runbooks_quote_commands() -> None:
    assert len(commands()) >= 8


@pytest.mark.parametrize(("runbook", "command"), commands(),
                         ids=[f"{r}:{c}" for r, c in commands()])
def test_a_runbook_command_parses(runbook: str, command: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    for placeholder, value in PLACEHOLDERS.items():
        command = command.replace(placeholder, value)
    parser = build_parser(default_plugins())
    try:
        parser.parse_args(shlex.split(command)[1:])
    except SystemExit:
        pytest.fail(f"{runbook}: `{command}` is not a ragmon command: "
                    f"{capsys.readouterr().err.strip().splitlines()[-1]}")
