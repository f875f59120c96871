"""Replicas sharing one store race where a check is followed by a write. Found in real
trials: two daemons on one SQLite file accepted 400 ingest posts but counted 186 (the
reservoir gained 200 rows, not 400 offers' worth); on PostgreSQL, 111 of 400 posts got 500
and 38 accepted ones were not counted; and two replicas starting together on a fresh
PostgreSQL both registered the golden set, one failed its first recall run with an
IntegrityError, and the probe-failing alert fired.

Each race here runs in real processes (as replicas are), released together, and the test
checks that they really overlapped before it checks the outcome.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest
import yaml
from sqlalchemy import select

from ragmon.monitor.http import free_port, http_get
from ragmon.monitor.store import Store
from ragmon.monitor.store.models import ProbeRun
from ragmon.probes.drift.tables import DriftReservoirItem, DriftReservoirState

OFFERS_PER_WRITER = 200
CAPACITY = 100

WRITER = """
import json, sys, time
from pathlib import Path
from ragmon.monitor.store import Store
from ragmon.probes.drift.state import Item, add_items

url, tag, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
store = Store(url)
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
start = time.time()
for i in range(int(sys.argv[4])):
    add_items(store, "queries", [Item(text=f"{tag}-{i}")], int(sys.argv[5]))
print(json.dumps({"start": start, "end": time.time()}), flush=True)
store.close()
"""


def release_together(commands: list[list[str]], go: Path) -> list[str]:
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in commands]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.touch()
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * len(procs), [e for _, e in outputs]
    return [out for out, _ in outputs]


def test_two_writers_never_lose_reservoir_counts(store_url: str, tmp_path: Path) -> None:
    """Two processes offer 200 one-item batches each to one reservoir at the same time:
    the count is exactly 400 and the reservoir is a valid algorithm-R sample of them."""
    store = Store(store_url)
    store.migrate()
    go = tmp_path / "go"
    outputs = release_together([
        [sys.executable, "-c", WRITER, store_url, tag, str(go), str(OFFERS_PER_WRITER),
         str(CAPACITY)] for tag in ("a", "b")
    ], go)
    spans = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    overlap = min(s["end"] for s in spans) - max(s["start"] for s in spans)
    shortest = min(s["end"] - s["start"] for s in spans)
    assert overlap > 0.5 * shortest, spans  # the writers really competed
    try:
        with store.session() as s:
            state = s.get(DriftReservoirState, ("queries", ""))
            texts = [r.text for r in s.scalars(
                select(DriftReservoirItem).where(DriftReservoirItem.probe == "queries"))]
    finally:
        store.close()
    assert state is not None and state.seen == 2 * OFFERS_PER_WRITER
    offered = {f"{tag}-{i}" for tag in ("a", "b") for i in range(OFFERS_PER_WRITER)}
    assert len(texts) == CAPACITY and len(set(texts)) == CAPACITY
    assert set(texts) <= offered
    assert {t[0] for t in texts} == {"a", "b"}  # both writers' items were sampled


@pytest.fixture(scope="module")
def vector_index(tmp_path_factory: pytest.TempPathFactory, corpus_vectors: np.ndarray,
                 corpus: Any) -> Path:
    """A flat FAISS index of real MiniLM vectors and a golden set given as vectors, so a
    recall probe runs without loading a model (replicas start in a second)."""
    path = tmp_path_factory.mktemp("race")
    vectors = np.ascontiguousarray(corpus_vectors, dtype=np.float32)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    faiss.write_index(index, str(path / "index.faiss"))
    (path / "index.ids").write_text("".join(f"{c.id}\n" for c in corpus))
    with open(path / "golden.jsonl", "w") as fh:
        for i in range(0, 400, 20):
            fh.write(json.dumps({"id": f"q{i}", "vector": vectors[i].tolist(),
                                 "relevant": {corpus[i].id: 1}}) + "\n")
    return path


def replica_config(workdir: Path, store_url: str, probe: str = "docs-recall") -> Path:
    cfg = {
        "store": {"url": store_url},
        "server": {"listen": f"127.0.0.1:{free_port()}", "shutdown_grace": "5s"},
        "targets": {"docs": {"kind": "faiss", "path": str(workdir / "index.faiss"),
                             "ids_path": str(workdir / "index.ids"), "metric": "cosine"}},
        "golden_sets": {"questions": {"path": str(workdir / "golden.jsonl")}},
        "probes": {probe: {"kind": "recall", "target": "docs",
                                   "golden_set": "questions", "every": "1h", "jitter": "0s",
                                   "timeout": "1m"}},
    }
    path = workdir / f"replica-{uuid.uuid4().hex[:8]}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_two_replicas_starting_together_on_a_fresh_database_never_fail_a_run(
    new_postgres_database: Any, vector_index: Path,
) -> None:
    """Ten times: two `ragmon run` replicas start at the same instant on a new database,
    each migrates, registers the golden set and runs a recall probe of it; no run fails.
    (Each replica has a probe of its own: replicas share the slots of a common probe, so
    only one of them would run its first slot.)"""
    failures: list[str] = []
    competed = 0
    for trial in range(10):
        url = new_postgres_database()
        configs = [replica_config(vector_index, url, f"docs-recall-{i}") for i in range(2)]
        procs = [subprocess.Popen([sys.executable, "-m", "ragmon.monitor", "run", "-c", str(c)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for c in configs]
        store = Store(url)
        try:
            deadline = time.monotonic() + 120
            runs: list[ProbeRun] = []
            while time.monotonic() < deadline:
                try:
                    runs = [r for i in range(2) for r in store.runs(f"docs-recall-{i}", 10)]
                except Exception:  # noqa: BLE001 - the schema may not exist yet
                    runs = []
                if len(runs) >= 2:
                    break
                time.sleep(0.2)
            assert len(runs) >= 2, f"trial {trial}: {len(runs)} runs"
            failures += [f"trial {trial}: {r.status}: {r.error}" for r in runs
                         if r.status != "ok"]
            starts = sorted(r.started_at.timestamp() for r in runs[:2])
            competed += starts[1] - starts[0] < 1.0  # both replicas ran at once
            for c in configs:
                port = yaml.safe_load(c.read_text())["server"]["listen"].split(":")[1]
                assert http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200
        finally:
            store.close()
            for p in procs:
                p.terminate()
            outputs = [p.communicate(timeout=30)[0] for p in procs]
            for c in configs:
                c.unlink()
        assert [p.returncode for p in procs] == [0, 0], outputs
    assert failures == []
    assert competed >= 8, competed  # the starts really coincided


def ingest_config(tmp_path: Path, store_url: str, name: str) -> tuple[Path, int]:
    port = free_port()
    cfg = {
        "store": {"url": store_url},
        "server": {"listen": f"127.0.0.1:{port}", "shutdown_grace": "5s"},
        "embedders": {"m": {"kind": "sentence-transformers"}},  # vectors of its dimension
        "probes": {"qd": {"kind": "drift", "source": "queries", "embedder": "m",
                          "every": "1h", "jitter": "0s", "window_size": CAPACITY,
                          "min_samples": 50, "methods": ["centroid"]}},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, port


def first_slot_over(port: int) -> bool:
    """The daemon on ``port`` has run or skipped a slot of probe qd (its own counters)."""
    text = http_get(f"http://127.0.0.1:{port}/metrics")[1]
    return any(line.startswith(("ragmon_probe_runs_total{", "ragmon_probe_slots_skipped_total{"))
               and 'probe="qd"' in line and float(line.rsplit(" ", 1)[1]) > 0
               for line in text.splitlines())


def test_two_daemons_ingest_without_losing_counts(store_url: str, tmp_path: Path) -> None:
    """400 one-item posts split across two `ragmon run` daemons sharing one store, sent at
    the same time: every accepted item is counted once, the reservoir is a valid sample."""
    import threading
    import urllib.request

    configs = [ingest_config(tmp_path, store_url, f"d{i}") for i in range(2)]
    procs = [subprocess.Popen([sys.executable, "-m", "ragmon.monitor", "run", "-c", str(c)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for c, _ in configs]
    rng = np.random.default_rng(7)
    accepted: dict[str, int] = {"a": 0, "b": 0}
    spans: dict[str, tuple[float, float]] = {}
    try:
        for proc, (_, port) in zip(procs, configs, strict=True):
            deadline = time.monotonic() + 180  # a busy machine: model load, migration lock
            while http_get(f"http://127.0.0.1:{port}/readyz")[0] != 200:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise AssertionError(f"daemon did not become ready: {proc.communicate()[0]}")
                time.sleep(0.2)
        store = Store(store_url)
        deadline = time.monotonic() + 60
        # Both daemons' first slots are over: each ran it, or skipped it because the other
        # had claimed it (the schedule is shared), so no window closes during the posts.
        while not all(first_slot_over(port) for _, port in configs):
            assert time.monotonic() < deadline, "the first drift runs did not finish"
            time.sleep(0.2)
        go = threading.Event()

        def post(tag: str, port: int) -> None:
            go.wait()
            start = time.time()
            for i in range(OFFERS_PER_WRITER):
                body = json.dumps({"queries": [{"query": f"{tag}-{i}",
                                                "vector": rng.normal(size=384).tolist()}]})
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/ingest/qd", data=body.encode(),
                    headers={"Content-Type": "application/json"}, method="POST")
                with urllib.request.urlopen(req, timeout=30) as response:
                    accepted[tag] += response.status == 200
            spans[tag] = (start, time.time())

        threads = [threading.Thread(target=post, args=(tag, port))
                   for tag, (_, port) in zip(("a", "b"), configs, strict=True)]
        for t in threads:
            t.start()
        go.set()
        for t in threads:
            t.join(timeout=300)
        with store.session() as s:
            state = s.get(DriftReservoirState, ("qd", ""))
            texts = [r.text for r in s.scalars(
                select(DriftReservoirItem).where(DriftReservoirItem.probe == "qd"))]
        store.close()
    finally:
        for p in procs:
            p.terminate()
        outputs = [p.communicate(timeout=30)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert accepted == {"a": OFFERS_PER_WRITER, "b": OFFERS_PER_WRITER}
    overlap = min(e for _, e in spans.values()) - max(s for s, _ in spans.values())
    assert overlap > 0.5 * min(e - s for s, e in spans.values()), spans  # they competed
    assert state is not None and state.seen == sum(accepted.values())
    assert len(texts) == CAPACITY and len(set(texts)) == CAPACITY
    assert {t.split("-")[0] for t in texts} == {"a", "b"}
