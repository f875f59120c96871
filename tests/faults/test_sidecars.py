"""Three sidecar daemons (real `ragmon run` processes) share one real PostgreSQL store; each
probes its own pod's FAISS HNSW index under its own instance name, and pod-c's index searches
with efSearch 1 (recall@5 about 0.2 against 1.0 on the others).

Only pod-c's verdict and its per-instance alert fire; the grouped rule fires once, naming
pod-c as 1 of 3 instances; each instance compares with its own baseline (pod-c, never
healthy, has none: without the instance key it would borrow pod-a's healthy run); each
sidecar's /metrics exports only its own instance, labelled ``ragmon_instance``. pod-b takes
its name from ``$POD_NAME``, as the Helm chart's downward API gives it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from ragmon.alerts.grouped import GROUP
from ragmon.alerts.tables import AlertNotification, AlertState
from ragmon.monitor.http import free_port, http_get
from ragmon.monitor.store import Store
from ragmon.monitor.store.models import ProbeRun

from ..alerts.alert_support import Receiver, start_receiver, stop_receiver

PODS = ("pod-a", "pod-b", "pod-c")
DEGRADED = "pod-c"
RUNS = 4  # stored runs per instance before the test looks


def pod_index(folder: Path, n: int = 3000, dim: int = 32) -> None:
    """An HNSW index (M=16) of random unit vectors, its ids, and a golden set of 20 query
    vectors whose relevant documents are their exact top 5."""
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = rng.normal(size=(20, dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact = faiss.IndexFlatIP(dim)
    exact.add(vectors)
    _, truth = exact.search(queries, 5)
    index = faiss.IndexHNSWFlat(dim, 16, faiss.METRIC_INNER_PRODUCT)
    index.add(vectors)
    faiss.write_index(index, str(folder / "index.faiss"))
    (folder / "index.ids").write_text("".join(f"d{i}\n" for i in range(n)))
    with open(folder / "golden.jsonl", "w") as fh:
        for i, (query, top) in enumerate(zip(queries, truth, strict=True)):
            fh.write(json.dumps({"id": f"q{i}", "vector": query.tolist(),
                                 "relevant": {f"d{j}": 1 for j in top}}) + "\n")


def sidecar_config(folder: Path, pod: str, url: str, hook: str) -> tuple[Path, int]:
    port = free_port()
    rule = {"probe": "docs-recall", "field": "recall_ratio", "match": {"k": 5, "mode": "live"},
            "condition": "< 0.5", "severity": "critical"}
    deployment: dict[str, Any] = {"mode": "sidecar"}
    if pod != "pod-b":  # pod-b is named by $POD_NAME
        deployment["instance"] = pod
    cfg = {
        "deployment": deployment,
        "store": {"url": url, "retention_at_start": False},
        "server": {"listen": f"127.0.0.1:{port}", "shutdown_grace": "3s"},
        "targets": {"docs": {"kind": "faiss", "path": str(folder / "index.faiss"),
                             "ids_path": str(folder / "index.ids"), "metric": "cosine",
                             "ef_search": 1 if pod == DEGRADED else 128}},
        "golden_sets": {"questions": {"path": str(folder / "golden.jsonl")}},
        "probes": {"docs-recall": {"kind": "recall", "target": "docs", "golden_set": "questions",
                                   "every": "2s", "jitter": "0s", "timeout": "10s", "k": [5]}},
        "alerts": {"delivery": {"poll": "200ms"},
                   "sinks": {"hook": {"kind": "webhook", "url": hook}},
                   "rules": {"RecallLow": rule,
                             "RecallLowPods": {**rule, "group_instances": True,
                                               "for": "4s"}}},
    }
    path = folder / "ragmon.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, port


@pytest.fixture
def receiver() -> Any:
    r = start_receiver()
    yield r
    stop_receiver(r)


def runs_by_pod(store: Store) -> dict[str, list[ProbeRun]]:
    with store.session() as s:
        rows = s.scalars(select(ProbeRun).order_by(ProbeRun.id)).all()
    out: dict[str, list[ProbeRun]] = {pod: [] for pod in PODS}
    for run in rows:
        out.setdefault(run.instance, []).append(run)
    return out


def firing(store: Store) -> list[AlertState]:
    with store.session() as s:
        return list(s.scalars(select(AlertState).where(AlertState.state == "firing")).all())


def scrape(port: int) -> list[dict[str, str]]:
    """The labels of every ragmon_recall_ratio sample, with its value under "value"."""
    status, body = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    return [{**s.labels, "value": str(s.value)} for f in text_string_to_metric_families(body)
            for s in f.samples if s.name == "ragmon_recall_ratio"]


def test_sidecars_keep_verdicts_baselines_and_alerts_per_instance(
    tmp_path: Path, postgres_url: str, receiver: Receiver,
) -> None:
    store = Store(postgres_url)
    store.migrate()  # before the daemons, which migrate too, so the test can read at once
    first = tmp_path / PODS[0]
    first.mkdir()
    pod_index(first)
    procs, ports = {}, {}
    for pod in PODS:
        folder = tmp_path / pod
        if pod != PODS[0]:
            shutil.copytree(first, folder)  # the same data in every pod; only efSearch differs
        config, ports[pod] = sidecar_config(folder, pod, postgres_url, receiver.url)
        env = {k: v for k, v in os.environ.items() if k != "POD_NAME"}
        if pod == "pod-b":
            env["POD_NAME"] = pod
        log = open(folder / "daemon.log", "wb")  # noqa: SIM115 - closed with the process
        procs[pod] = (subprocess.Popen([sys.executable, "-m", "ragmon.monitor", "run", "-c",
                                        str(config)], env=env, stdout=log,
                                       stderr=subprocess.STDOUT), log)
    try:
        deadline = time.monotonic() + 50
        while True:
            runs = runs_by_pod(store)
            states = firing(store)
            done = (all(len(runs[p]) >= RUNS for p in PODS)
                    and {s.rule for s in states} == {"RecallLow", "RecallLowPods"})
            if done or time.monotonic() > deadline:
                break
            for pod, (proc, _) in procs.items():
                assert proc.poll() is None, (tmp_path / pod / "daemon.log").read_text()[-3000:]
            time.sleep(0.5)
        assert set(runs) == set(PODS), "a run was stored under another instance name"
        assert all(len(runs[p]) >= RUNS for p in PODS), {p: len(r) for p, r in runs.items()}

        # The schedule is per instance: a slot one pod claimed is run by the others too.
        slots = [{r.slot for r in runs[p] if r.slot is not None} for p in PODS]
        assert set.intersection(*slots), slots

        # Verdicts: only the degraded pod's index is blamed.
        verdicts = {p: {r.details.get("verdict") for r in runs[p] if r.status == "ok"}
                    for p in PODS}
        assert verdicts["pod-a"] == verdicts["pod-b"] == {"healthy"}, verdicts
        assert verdicts[DEGRADED] == {"index"}, verdicts

        # Baselines: each instance's own runs; a pod with no eligible run of its own yet
        # compares with another pod's, and says which (what a pod a rollout created does).
        ids = {p: {r.id for r in runs[p]} for p in PODS}
        own = {p: set() for p in PODS}
        for pod in PODS:
            for r in runs[pod]:
                base = (r.details.get("baseline") or {}).get("run_id")
                if base is None or base in ids[pod]:
                    own[pod].add(base)
                    continue
                lender = r.details.get("reference_from_instance")
                assert lender in PODS and lender != pod, (pod, base, r.details)
                assert base in ids[lender], (pod, base, lender)
        assert own["pod-a"] - {None}, "pod-a never compared with a baseline of its own"
        assert own[DEGRADED] <= {None}, "the degraded pod's runs became its own baseline"

        # Alerts: one per-instance alert (pod-c's), one grouped alert counting 1 of 3.
        by_rule = {}
        for state in states:
            assert state.rule not in by_rule, "one firing state per rule"
            by_rule[state.rule] = state
        assert by_rule["RecallLow"].instance == DEGRADED
        assert by_rule["RecallLow"].labels["ragmon_instance"] == DEGRADED
        grouped = by_rule["RecallLowPods"]
        assert grouped.instance == GROUP and "ragmon_instance" not in grouped.labels
        assert grouped.details["instances"]["matched"] == [DEGRADED]
        assert grouped.details["instances"]["total"] == 3
        assert grouped.details["value"] == 1.0

        # Delivered once each, across the three sidecars' delivery workers.
        sent = [r.json() for r in receiver.wait_for(2, timeout=15)]
        with store.session() as s:
            queued = s.scalars(select(AlertNotification.rule)).all()
        assert sorted(queued) == ["RecallLow", "RecallLowPods"]
        payloads = {p["alert"]["name"]: p["alert"] for p in sent}
        assert len(sent) == 2 and set(payloads) == {"RecallLow", "RecallLowPods"}
        assert payloads["RecallLow"]["labels"]["ragmon_instance"] == DEGRADED
        assert payloads["RecallLowPods"]["value"] == 1.0
        # The page counts the instances that had reported when it fired (all three, but for
        # a pod that started late); the state above is the newest count.
        assert re.fullmatch(r"RecallLowPods: 1 of [123] instances of probe docs-recall match "
                            r"recall_ratio\{k=5,mode=live\} \(pod-c\)",
                            payloads["RecallLowPods"]["annotations"]["summary"])

        # /metrics: each sidecar exports its own instance only.
        for pod in PODS:
            samples = scrape(ports[pod])
            assert samples and {s["ragmon_instance"] for s in samples} == {pod}
            live = [float(s["value"]) for s in samples if s["mode"] == "live" and s["k"] == "5"]
            assert (live[0] < 0.5) == (pod == DEGRADED), (pod, live)
    finally:
        store.close()
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.terminate()
        codes = {pod: proc.wait(timeout=60) for pod, (proc, _) in procs.items()}
        for _, log in procs.values():
            log.close()
    assert codes == {pod: 0 for pod in PODS}
    for pod in PODS:  # pod-b's name came from $POD_NAME
        assert f"sidecar instance {pod!r}" in (tmp_path / pod / "daemon.log").read_text()
