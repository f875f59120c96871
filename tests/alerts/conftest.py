"""Fixtures of the alert tests; helpers live in alert_support.py (importable by name)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from alert_support import Receiver, start_receiver, stop_receiver  # noqa: E402


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP receiver on 127.0.0.1 that records every request."""
    r = start_receiver()
    yield r
    stop_receiver(r)
