"""Fixtures of the alert tests; helpers live in alert_support.py (importable by name)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from alert_support import (  # noqa: E402
    Receiver,
    running_alertmanager,
    start_receiver,
    stop_receiver,
)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP receiver on 127.0.0.1 that records every request."""
    r = start_receiver()
    yield r
    stop_receiver(r)


@pytest.fixture
def alertmanager(tmp_path: Path, receiver: Receiver) -> Iterator[str]:
    """A real Alertmanager on loopback that forwards every alert to ``receiver``."""
    with running_alertmanager(tmp_path, receiver) as url:
        yield url
