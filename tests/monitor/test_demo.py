"""`ragmon demo` end to end: index built, every probe healthy, the daemon served and stopped."""

from __future__ import annotations

import io
from pathlib import Path

from ragmon.monitor.app import default_plugins
from ragmon.monitor.demo.run import run_demo
from ragmon.monitor.store import Store


def test_demo_runs_every_probe_and_the_daemon(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_demo(tmp_path / "demo", default_plugins(), out=out) == 0
    text = out.getvalue()
    assert "canary canary: ok" in text
    assert "recall probe docs-recall -> target stdlib-docs: ok" in text
    assert "VERDICT: healthy" in text
    assert "drift index-drift (index): ok" in text
    assert "GET /healthz -> 200 ok" in text and "GET /readyz -> 200 ok" in text
    assert 'ragmon_recall_verdict{kind="recall",probe="docs-recall",target="stdlib-docs",' \
           'verdict="healthy"} 1.0' in text
    assert text.rstrip().endswith(f"all probes ok; history in {tmp_path / 'demo' / 'ragmon.db'}")
    store = Store(f"sqlite:///{tmp_path / 'demo' / 'ragmon.db'}")
    # Each probe ran once by hand and once on the daemon's schedule; every run succeeded.
    for probe in ("canary", "docs-recall", "index-drift"):
        runs = store.runs(probe=probe, limit=10)
        assert len(runs) >= 2 and {r.status for r in runs} == {"ok"}
    # A second demo in the same folder reuses the index and the history.
    assert run_demo(tmp_path / "demo", default_plugins(), out=io.StringIO()) == 0
    assert len(store.runs(probe="canary", limit=10)) >= 4
