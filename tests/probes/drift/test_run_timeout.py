"""The default time limit of a drift run grows with its window: the window's texts are
embedded at run time, and 300 texts on a loaded 2-core machine took longer than the
60 seconds every probe kind defaults to."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ragmon.monitor.app import load_config
from ragmon.probes.drift.config import default_timeout

CONFIG = """
embedders:
  minilm: {kind: sentence-transformers, model: all-MiniLM-L6-v2}
probes:
  q: {kind: drift, source: queries, embedder: minilm, window_size: 300%s}
  small: {kind: drift, source: queries, embedder: minilm, window_size: 10}
  canary: {kind: drift, source: canary, embedder: minilm, texts: %s}
"""


def probes(tmp_path: Path, extra: str = "") -> dict:  # type: ignore[type-arg]
    path = tmp_path / "ragmon.yaml"
    path.write_text(textwrap.dedent(CONFIG % (extra, [f"t{i}" for i in range(500)])))
    return load_config(str(path)).probes


def test_a_300_text_window_gets_more_than_a_minute(tmp_path: Path) -> None:
    p = probes(tmp_path)
    assert p["q"].timeout == pytest.approx(default_timeout(300)) == pytest.approx(120.0)
    assert p["small"].timeout == pytest.approx(62.0)
    assert p["canary"].timeout == pytest.approx(default_timeout(500)) == pytest.approx(160.0)


def test_a_configured_timeout_is_kept(tmp_path: Path) -> None:
    assert probes(tmp_path, ", timeout: 45s")["q"].timeout == 45.0
