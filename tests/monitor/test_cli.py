"""The command line as a user runs it: exit codes, output, --help everywhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ragmon.monitor import __version__
from ragmon.monitor.app import default_plugins, main
from ragmon.monitor.cli import build_parser

CONFIG = {
    "store": {"url": "sqlite:///ragmon.db"},
    "embedders": {"minilm": {"kind": "sentence-transformers", "model": "all-MiniLM-L6-v2"}},
    "probes": {"canary": {"kind": "canary", "embedder": "minilm", "every": "1m", "timeout": "5m"}},
}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "ragmon.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


def ragmon(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ragmon.monitor", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out == f"ragmon {__version__}\n"


def test_help_at_every_level() -> None:
    parser = build_parser(default_plugins())
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"run", "probe", "migrate", "check-config", "version", "demo"} <= set(commands)
    for name, sub in commands.items():
        text = sub.format_help()
        assert text.startswith("usage: ragmon " + name), name
        assert len(text.splitlines()) >= 3, name
    top = ragmon("--help")
    assert top.returncode == 0 and "check-config" in top.stdout


def test_check_config(config: Path, tmp_path: Path) -> None:
    ok = ragmon("check-config", str(config))
    assert (ok.returncode, ok.stdout) == (0, f"{config}: OK\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("probes:\n  canary: {kind: canary, embedder: nope, every: soon}\n")
    result = ragmon("check-config", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == "2 error(s) in the configuration"
    assert f"error: {bad}: probes.canary.every: " in result.stderr
    assert f"error: {bad}: probes.canary.embedder: " in result.stderr


def test_migrate_then_probe_once(config: Path) -> None:
    migrated = ragmon("migrate", "--config", str(config))
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout.startswith("store sqlite:///")
    assert "schema empty -> " in migrated.stdout
    first = ragmon("probe", "canary", "--once", "-c", str(config))
    assert first.returncode == 0, first.stderr
    assert "reference captured (first run)" in first.stdout
    second = ragmon("probe", "canary", "--once", "-c", str(config))
    assert second.returncode == 0, second.stderr
    lines = second.stdout.splitlines()
    assert lines[0] == "canary canary: ok"
    assert lines[1] == "  verdict: unchanged"
    assert lines[2].startswith("  cosine min 1.0000") or lines[2].startswith("  cosine min 0.9999")
    assert lines[-1].startswith("(stored as run 2 in sqlite:///")


def test_probe_unknown_name(config: Path) -> None:
    result = ragmon("probe", "nope", "--once", "-c", str(config))
    assert result.returncode == 1
    assert result.stderr == "ragmon: error: no probe named 'nope'; valid probes: canary\n"


def test_missing_config_file(tmp_path: Path) -> None:
    result = ragmon("run", "-c", str(tmp_path / "absent.yaml"))
    assert result.returncode == 2
    assert "absent.yaml" in result.stderr and "Traceback" not in result.stderr


# --- check-config reads what it can offline: golden sets, index files ---------------------

def recall_config(tmp_path: Path, golden: dict[str, object], index: str = "index.faiss") -> Path:
    path = tmp_path / "ragmon.yaml"
    path.write_text(yaml.safe_dump({
        "embedders": {"minilm": {"kind": "sentence-transformers"}},
        "targets": {"docs": {"kind": "faiss", "path": index, "embedder": "minilm"}},
        "golden_sets": {"questions": golden},
        "probes": {"docs-recall": {"kind": "recall", "target": "docs",
                                   "golden_set": "questions"}},
    }))
    return path


def check(path: Path, *flags: str,
          capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], list[str]]:
    code = main(["check-config", str(path), *flags])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def test_check_config_reports_a_golden_file_that_does_not_parse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "index.faiss").write_bytes(b"")
    (tmp_path / "golden.jsonl").write_text('{"id": "q1", "query": "parse a date", '
                                           '"relevant": ["d1"]}\n{"id": "q2", "query": \n')
    path = recall_config(tmp_path, {"path": "golden.jsonl"})
    code, out, err = check(path, capsys=capsys)
    assert (code, out) == (2, [])
    assert err[0].startswith(f"error: {path}: golden_sets.questions: ")
    assert f"{tmp_path / 'golden.jsonl'}:2" in err[0] and "JSON" in err[0]
    assert err[1:] == ["1 error(s) in the configuration"]


def test_check_config_refuses_a_trec_golden_set_without_queries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "index.faiss").write_bytes(b"")
    (tmp_path / "qrels.txt").write_text("q1 0 d1 1\n")
    path = recall_config(tmp_path, {"path": "qrels.txt", "format": "trec"})
    code, out, err = check(path, capsys=capsys)
    assert (code, out) == (2, [])
    assert err == [
        f"error: {path}: golden_sets.questions: a TREC golden set needs 'queries': a TSV "
        "(id<TAB>text) or JSONL file",
        "1 error(s) in the configuration"]


def test_check_config_warns_of_missing_files_and_strict_refuses_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = recall_config(tmp_path, {"path": "golden.jsonl"})
    warnings = [
        f"warning: {path}: golden_sets.questions.path: file {str(tmp_path / 'golden.jsonl')!r} "
        "does not exist (yet?): the probes that use it fail until it appears",
        f"warning: {path}: targets.docs.path: file {str(tmp_path / 'index.faiss')!r} "
        "does not exist (yet?): the probes that use it fail until it appears",
    ]
    code, out, err = check(path, capsys=capsys)
    assert (code, out, err) == (0, [f"{path}: OK, 2 warning(s)"], warnings)
    code, out, err = check(path, "--strict", capsys=capsys)
    assert (code, out) == (2, [])
    assert err == [w.replace("warning: ", "error: ", 1) for w in warnings] + [
        "2 error(s) in the configuration"]
    (tmp_path / "index.faiss").write_bytes(b"")
    (tmp_path / "golden.jsonl").write_text('{"id": "q1", "query": "parse a date", '
                                           '"relevant": ["d1"]}\n')
    assert check(path, "--strict", capsys=capsys) == (0, [f"{path}: OK"], [])
