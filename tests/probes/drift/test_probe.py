"""The drift probe end to end on real parts: query batches over real HTTP into the
persisted reservoir, a FAISS index for coverage, SQLite, the runner; reference capture,
a topic injection that drifts, alarms after persistence, the cluster explanation."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from ragmon.monitor.http import App, HttpServer
from ragmon.probes.drift import state
from ragmon.probes.drift.ingest import IngestApp, drift_probes
from ragmon.probes.references import latest_reference, save_reference
from tests.probes.drift.conftest import PROBE, DriftEnv


class Ingest:
    """The ingest endpoint served on 127.0.0.1 by ragmon's own HTTP server."""

    def __init__(self, env: DriftEnv):
        routes = {"/ingest": IngestApp(env.store, drift_probes(env.config))}
        self.server = HttpServer(App(CollectorRegistry(), lambda: (True, "ok"),
                                     lambda: (True, "ok"), routes), "127.0.0.1", 0)
        self.server.start()
        self.url = f"http://127.0.0.1:{self.server.port}/ingest/{PROBE}"

    def post(self, body: bytes | Any, token: str | None = "s3cret-token") -> tuple[int, dict]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.url, data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def send(self, env: DriftEnv, rows: np.ndarray, with_vectors: bool = True) -> None:
        for start in range(0, len(rows), 100):
            status, body = self.post({"queries": env.items(rows[start:start + 100],
                                                           with_vectors)})
            assert status == 200, body

    def close(self) -> None:
        self.server.stop()


@pytest.fixture
def ingest(drift_env: DriftEnv):
    server = Ingest(drift_env)
    yield server
    server.close()


def values(result: Any) -> dict[tuple[str, str], float]:
    return {(n, labels.get("method", "")): v for n, labels, v in result.values}


def test_capture_compare_drift_alarm_and_explanation(drift_env, ingest) -> None:
    env, w = drift_env, drift_env.windows
    rng = np.random.default_rng(0)
    order = rng.permutation(w.pool)
    ingest.send(env, order[:400])
    result, _ = env.run_probe()
    assert result.status == "ok", result.error
    assert result.details["verdict"] == "reference captured"
    ref = latest_reference(env.store, PROBE, "queries")
    assert ref is not None and ref.pinned and ref.vectors.shape == (400, 384)
    assert ref.embedder_fingerprint == env.minilm.fingerprint_id()

    # A window of the same traffic: compared, nothing pages. Half of it arrives as text only
    # and is embedded by the probe.
    ingest.send(env, order[400:600])
    ingest.send(env, order[600:800], with_vectors=False)
    result, _ = env.run_probe()
    assert result.status == "ok", result.error
    v = values(result)
    assert result.details["verdict"] == "compared"
    assert v[("drift_p_value", "mmd")] > 0.001
    assert v[("drift_alarm", "mmd")] == 0
    assert ("coverage_gap_ratio", "") in v

    # Two windows with 20% of a topic the index does not hold: both differ, the 2-of-3 rule
    # raises the alarm at the second, clusters name the topic, coverage sees the gap.
    for step in range(2):
        rows = np.concatenate([order[800 + 320 * step: 800 + 320 * (step + 1)],
                               rng.choice(w.topic_rows, 80, replace=False)])
        ingest.send(env, rng.permutation(rows))
        result, _ = env.run_probe()
        assert result.status == "ok", result.error
        v = values(result)
        assert v[("drift_window_drifted", "mmd")] == 1
        assert v[("drift_alarm", "mmd")] == step  # 1 of 3, then 2 of 3
    assert v[("coverage_gap_ratio", "")] > 0.15
    gaps = result.details["methods"]["coverage"]["details"]["examples"]
    assert 3 <= len(gaps) <= 5 and all(g["distance"] > 0 and g["text"] for g in gaps)
    assert sum(w.topics[int(g["id"])] == w.topic for g in gaps) >= len(gaps) - 1
    grew = result.details["methods"]["clusters"]["details"]["grew"][0]
    assert all(w.topics[int(e["id"])] == w.topic for e in grew["examples"])
    text = env.runner.probes[PROBE].render(result)
    assert "ALARM: on" in text and "cluster" in text and grew["examples"][0]["text"][:60] in text
    assert f'outside coverage: "{gaps[0]["text"][:60]}' in text

    stored = state.statistics(env.store, PROBE, limit=20)
    latest_mmd = next(s for s in stored if s.method == "mmd")
    assert latest_mmd.alarm and latest_mmd.drifted and latest_mmd.n_current == 400
    clusters_row = next(s for s in stored if s.method == "clusters")
    shifts = state.cluster_shifts(env.store, clusters_row.id)
    assert shifts[0].direction == "grew" and shifts[0].examples == grew["examples"]
    assert state.peek_window(env.store, PROBE).items == []  # a new window started


def test_insufficient_data_gives_no_p_value(drift_env, ingest) -> None:
    ingest.send(drift_env, drift_env.windows.pool[:3])
    result, _ = drift_env.run_probe()
    assert result.status == "ok"
    assert result.details["message"] == (
        "insufficient data: current window has 3 samples, 50 needed")
    assert not [n for n, _, _ in result.values if n == "drift_p_value"]
    assert "insufficient data" in drift_env.runner.probes[PROBE].render(result)
    # The window keeps filling instead of being thrown away.
    assert len(state.peek_window(drift_env.store, PROBE).items) == 3


def test_fingerprint_mismatch_is_an_error(drift_env, ingest) -> None:
    w = drift_env.windows
    save_reference(drift_env.store, PROBE, "queries", "another-pipeline",
                                   w.vectors[w.pool[:100]], [], pinned=True)
    ingest.send(drift_env, w.pool[100:300])
    result, _ = drift_env.run_probe()
    assert result.status == "failed"
    assert "was embedded by pipeline another-pipeline" in result.error
    assert f"ragmon baseline capture {PROBE}" in result.error


def test_ingest_refuses_bad_requests_and_stores_nothing(drift_env, ingest) -> None:
    good = {"queries": drift_env.items(drift_env.windows.pool[:2])}
    assert ingest.post(good, token="wrong")[0] == 401
    assert ingest.post(good, token=None)[0] == 401
    assert ingest.post(b"{not json")[0] == 400
    status, body = ingest.post(b'{"vectors": [[1.0, NaN]]}')
    assert status == 400 and "NaN" in body["error"]
    status, body = ingest.post({"vectors": [[1.0, 2.0], [1.0, 2.0, 3.0]]})
    assert status == 400 and "mixed dimensions [2, 3]" in body["error"]
    status, body = ingest.post({"queries": [{"id": "x"}]})
    assert status == 400 and "needs 'query'" in body["error"]
    drift_env.probe["queries"]["max_request_bytes"] = 1 << 20  # the probe's own limit
    drift_env.reload()
    limited = Ingest(drift_env)
    try:
        status, body = limited.post({"texts": ["x" * 1000] * 1100})
    finally:
        limited.close()
    assert status == 413 and "max_request_bytes 1048576" in body["error"]
    assert state.peek_window(drift_env.store, PROBE).items == []
    assert ingest.post(good) == (200, {"accepted": 2})
    assert len(state.peek_window(drift_env.store, PROBE).items) == 2


def test_daemon_serves_ingest_and_exports_drift_metrics(drift_env) -> None:
    """The real daemon: install() mounts /ingest on its listener and the tail job runs in
    its scheduler; a drift run's values appear on /metrics under the agreed names."""
    from ragmon.monitor.app import load_config
    from ragmon.monitor.daemon import Daemon
    from tests.conftest import free_port

    port = free_port()
    path = drift_env.config_path
    text = path.read_text() + f"server: {{listen: '127.0.0.1:{port}'}}\n"
    path.write_text(text)
    daemon = Daemon(load_config(str(path), environ={}), CollectorRegistry())
    daemon.start()
    try:
        daemon.context._embedders["minilm"] = drift_env.minilm
        w = drift_env.windows

        def send(rows: np.ndarray) -> None:
            for start in range(0, len(rows), 100):
                body = json.dumps({"queries": drift_env.items(rows[start:start + 100])})
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/ingest/{PROBE}", data=body.encode(),
                    method="POST", headers={"Authorization": "Bearer s3cret-token"})
                with urllib.request.urlopen(req, timeout=30) as resp:
                    assert json.loads(resp.read()) == {"accepted": 100}

        send(w.pool[:200])
        assert daemon.scheduler.get_job(f"drift-tail:{PROBE}") is not None
        daemon.runner.run(PROBE)  # captures the reference
        send(w.pool[200:400])
        result, _ = daemon.runner.run(PROBE)
        assert result.status == "ok", result.error
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as resp:
            metrics = resp.read().decode()
        for name in ("ragmon_drift_statistic", "ragmon_drift_p_value",
                     "ragmon_drift_window_drifted", "ragmon_drift_alarm",
                     "ragmon_coverage_gap_ratio", "ragmon_drift_window_size"):
            assert f"{name}{{" in metrics, name
        assert 'method="mmd"' in metrics and 'source="queries"' in metrics
    finally:
        daemon.shutdown()
