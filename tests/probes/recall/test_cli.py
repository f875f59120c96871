"""`ragmon probe NAME --once` for a recall probe, and `ragmon baseline pin RUN_ID`, through
ragmon's own command line (in process). The golden set carries precomputed query vectors,
so the command does not load the model a second time."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ragmon.monitor.app import main
from ragmon.monitor.demo.embeddings import cached_encode
from tests.probes.recall.conftest import PROBE, Env


@pytest.fixture
def cli_env(env: Env) -> Env:
    rows = [json.loads(line) for line in env.golden.read_text().splitlines()]
    vectors = cached_encode(env.minilm, [r["query"] for r in rows])
    with_vectors = env.tmp / "golden-vectors.jsonl"
    with_vectors.write_text("\n".join(
        json.dumps({"id": r["id"], "vector": v.tolist(), "relevant": r["relevant"]})
        for r, v in zip(rows, vectors, strict=True)) + "\n")
    env.golden_set["path"] = with_vectors.name
    env.reload()
    return env


def probe_once(env: Env, capsys: Any) -> tuple[int, str]:
    code = main(["probe", PROBE, "--once", "-c", str(env.tmp / "ragmon.yaml")])
    return code, capsys.readouterr().out


def test_probe_once_prints_the_report_and_pin_moves_the_baseline(cli_env: Env, capsys: Any) -> None:
    config = str(cli_env.tmp / "ragmon.yaml")
    code, out = probe_once(cli_env, capsys)
    assert code == 0, out
    assert "VERDICT: healthy" in out
    assert "\n  baseline captured by this run; index fidelity " in out
    assert "at k=10 (typical for a healthy index: >= 0.9)" in out
    assert "k | recall live exact" in out and "(stored as run 1 in sqlite:///" in out
    assert "latency p50" in out

    cli_env.target["ef_search"] = 1
    cli_env.write_config()
    code, out = probe_once(cli_env, capsys)
    assert code == 0
    assert "VERDICT: index" in out and "ANN-vs-exact recall fell from" in out
    assert "baseline: run 1 (first healthy run" in out and "SIGNIFICANT DROP" in out
    assert "top regressed queries (recall@10):" in out

    assert main(["baseline", "pin", "2", "--note", "ef lowered on purpose", "-c", config]) == 0
    assert "run 2 (probe 'docs-recall'" in capsys.readouterr().out
    code, out = probe_once(cli_env, capsys)
    assert code == 0
    assert "baseline: run 2 (pinned" in out and "no significant drop" in out
    assert "ANN-vs-exact recall fell" not in out


def test_pin_refuses_what_cannot_be_a_baseline(cli_env: Env, capsys: Any) -> None:
    config = str(cli_env.tmp / "ragmon.yaml")
    assert main(["baseline", "pin", "999", "-c", config]) == 1
    assert "no run with id 999 in store sqlite:///" in capsys.readouterr().err
    cli_env.run("canary")
    assert main(["baseline", "pin", "1", "-c", config]) == 1
    assert ("run 1 is a 'canary' run of probe 'canary'; only recall runs can be pinned"
            in capsys.readouterr().err)
