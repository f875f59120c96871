"""The index and canary sources, `ragmon baseline capture`, `ragmon probe NAME --once`,
and a changed embedding pipeline caught in every window."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ragmon.monitor.app import main
from ragmon.monitor.demo.embeddings import cached_encode
from ragmon.probes.drift import state
from ragmon.probes.drift.methods.mmd import mmd
from ragmon.probes.drift.methods.trend import norms
from ragmon.probes.references import latest_reference
from tests.probes.drift.conftest import PROBE, DriftEnv, write_flat_index


def test_baseline_capture_and_probe_once(drift_env, capsys) -> None:
    w = drift_env.windows
    path = drift_env.config_path
    assert main(["baseline", "capture", PROBE, "--config", str(path)]) != 0
    err = capsys.readouterr().err
    assert "insufficient data" in err and "0 samples, 50 needed" in err
    with open(drift_env.config.probes[PROBE].queries.jsonl, "w") as fh:
        for r in w.pool[:120]:
            fh.write(json.dumps({"query": w.texts[r], "id": str(r),
                                 "vector": w.vectors[r].tolist()}) + "\n")
    assert main(["baseline", "capture", PROBE, "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("captured reference ") and drift_env.minilm.fingerprint_id() in out
    ref = latest_reference(drift_env.store, PROBE, "queries")
    assert ref is not None and ref.pinned and ref.vectors.shape[0] == 120
    with open(drift_env.config.probes[PROBE].queries.jsonl, "a") as fh:  # later traffic
        for r in w.pool[120:240]:
            fh.write(json.dumps({"query": w.texts[r], "id": str(r),
                                 "vector": w.vectors[r].tolist()}) + "\n")
    assert main(["probe", PROBE, "--once", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"drift {PROBE} (queries): ok" in out and "mmd" in out and "coverage" in out
    assert "cluster " in out and "grew" in out  # the explanation is printed
    assert main(["baseline", "capture", "nope", "--config", str(path)]) != 0
    assert "no drift probe named 'nope'; drift probes: queries-drift" in capsys.readouterr().err


def test_index_source_with_faiss(tmp_path, minilm, windows) -> None:
    env = DriftEnv(tmp_path, minilm, windows, source="index", window_size=400,
                   methods=["mmd", "norms"], queries={"http": False})
    try:
        result, _ = env.run_probe()
        assert result.status == "ok", result.error
        assert result.details["verdict"] == "reference captured"
        result, _ = env.run_probe()
        assert result.details["verdict"] == "compared"
        assert {n for n, _, _ in result.values} >= {"drift_statistic", "drift_alarm"}
        # The index is re-ingested with un-normalised vectors: the norms move.
        scale = np.random.default_rng(0).uniform(0.5, 2.0, (len(windows.pool), 1))
        write_flat_index(tmp_path / "docs.faiss",
                         (windows.vectors[windows.pool] * scale).astype(np.float32),
                         [str(i) for i in windows.pool])
        env.reload()
        result, _ = env.run_probe()
        drifted = {m: d["drifted"] for m, d in result.details["methods"].items()}
        assert drifted == {"mmd": True, "norms": True}
    finally:
        env.close()


def test_canary_source_captures_then_compares(tmp_path, minilm, windows) -> None:
    texts = [windows.texts[r] for r in windows.pool[:60]]
    env = DriftEnv(tmp_path, minilm, windows, source="canary", texts=texts, target=None,
                   embedder="minilm", methods=["mmd", "centroid"], queries={"http": False})
    try:
        assert env.run_probe()[0].details["verdict"] == "reference captured"
        result, _ = env.run_probe()
        assert result.details["verdict"] == "compared"
        assert result.details["methods"]["mmd"]["drifted"] is False
    finally:
        env.close()


@pytest.fixture(scope="module")
def truncated_vectors(minilm, windows) -> np.ndarray:
    """The pool's texts through a changed pipeline: truncation at 16 tokens."""
    import copy

    from ragmon.monitor.embedders.sentence_transformers import (
        SentenceTransformerEmbedder,
        SentenceTransformersConfig,
    )

    cfg = SentenceTransformersConfig(kind="sentence-transformers", model="all-MiniLM-L6-v2",
                                     max_seq_length=16)
    embedder = SentenceTransformerEmbedder("minilm-16", cfg)
    model = copy.deepcopy(minilm._load())
    model.max_seq_length = 16
    embedder._model = model
    rows = windows.pool[:1200]
    return cached_encode(embedder, [windows.texts[r] for r in rows])


def test_changed_pipeline_is_detected_in_every_window(windows, truncated_vectors) -> None:
    rows = windows.pool[:1200]
    rng = np.random.default_rng(21)
    for i in range(10):
        order = rng.permutation(len(rows))
        ref, cur = order[:500], order[500:1000]
        # Truncation changed: different texts, same pool, new pipeline for the current window.
        res = mmd(windows.vectors[rows[ref]], truncated_vectors[cur], alpha=0.01,
                  permutations=200, seed=i)
        assert res.drifted, (i, res.p_value)
        # Normalisation changed: the same model without the final normalisation.
        scaled = windows.vectors[rows[cur]] * rng.uniform(0.8, 1.25, (500, 1)).astype(np.float32)
        assert norms(windows.vectors[rows[ref]], scaled, alpha=0.01).drifted


def test_rolling_reference_pools_previous_windows(tmp_path, minilm, windows) -> None:
    env = DriftEnv(tmp_path, minilm, windows, source="index", window_size=200,
                   methods=["mmd"], queries={"http": False},
                   reference={"mode": "rolling", "period": "7d", "size": 300})
    try:
        assert env.run_probe()[0].details["verdict"] == "reference captured"
        first, _ = env.run_probe()
        assert first.details["n_reference"] == 200 and not first.details["reference_pinned"]
        second, _ = env.run_probe()
        assert second.details["n_reference"] == 300  # two windows pooled, subsampled to size
        assert latest_reference(env.store, PROBE, "index").pinned is False
    finally:
        env.close()


def test_cusum_rule_state_persists_between_runs(tmp_path, minilm, windows) -> None:
    env = DriftEnv(tmp_path, minilm, windows, source="index", window_size=200,
                   methods=["mmd"], queries={"http": False},
                   alarm={"rule": "cusum", "false_alarms": 1, "per": "30d"})
    try:
        env.run_probe()  # captures
        first, _ = env.run_probe()
        cal = first.details["calibration"]
        assert cal["rule"] == "cusum" and cal["alpha"] == pytest.approx(1 / 720)
        assert cal["cusum_h"] > 0
        # Re-ingested un-normalised: every window is extreme, the sum climbs past h.
        scale = np.random.default_rng(1).uniform(0.5, 2.0, (len(windows.pool), 1))
        write_flat_index(tmp_path / "docs.faiss",
                         (windows.vectors[windows.pool] * scale).astype(np.float32),
                         [str(i) for i in windows.pool])
        env.reload()
        alarms = []
        for _ in range(3):
            result, _ = env.run_probe()
            alarms.append(result.details["methods"]["mmd"]["alarm"])
        assert alarms[-1] is True
        saved = state.previous_alarm_state(env.store, PROBE, "mmd")
        assert saved["alarm"] is True and saved["cusum"] > cal["cusum_h"]
    finally:
        env.close()
