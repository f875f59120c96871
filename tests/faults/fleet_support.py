"""Real `ragmon run` daemons sharing one PostgreSQL store, for the shared-schedule tests:
a small FAISS index with a golden set given as vectors (so a recall probe runs in
milliseconds and no model is loaded), configs, start and stop, /metrics reads, and the
check that every slot of every probe ran exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from ragmon.monitor.http import free_port, http_get
from ragmon.monitor.store import Store
from ragmon.monitor.store.models import ProbeRun, ProbeSlot

BROKEN_CLAIM = Path(__file__).resolve().parent / "broken_claim.py"


def vector_index(folder: Path, n: int = 600, dim: int = 16, queries: int = 8) -> Path:
    """A flat FAISS index of ``n`` random unit vectors, its ids and a vector golden set."""
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(dim)
    index.add(vectors)
    faiss.write_index(index, str(folder / "index.faiss"))
    (folder / "index.ids").write_text("".join(f"d{i}\n" for i in range(n)))
    with open(folder / "golden.jsonl", "w") as fh:
        for i in range(queries):
            fh.write(json.dumps({"id": f"q{i}", "vector": vectors[i * 7].tolist(),
                                 "relevant": {f"d{i * 7}": 1}}) + "\n")
    return folder


def recall_probe(every: str = "2s", jitter: str = "0s", timeout: str = "10s") -> dict[str, Any]:
    return {"kind": "recall", "target": "docs", "golden_set": "questions", "every": every,
            "jitter": jitter, "timeout": timeout, "k": [5]}


def fleet_config(folder: Path, url: str, replica: str, probes: dict[str, Any],
                 **sections: Any) -> tuple[Path, int]:
    """A daemon's config file (named ``replica``) and its port."""
    port = free_port()
    cfg: dict[str, Any] = {
        "store": {"url": url, "retention_at_start": False},
        "server": {"listen": f"127.0.0.1:{port}", "shutdown_grace": "3s"},
        "scheduler": {"replica": replica, "max_workers": 8},
        "targets": {"docs": {"kind": "faiss", "path": str(folder / "index.faiss"),
                             "ids_path": str(folder / "index.ids"), "metric": "cosine"}},
        "golden_sets": {"questions": {"path": str(folder / "golden.jsonl")}},
        "probes": probes,
    }
    for key, value in sections.items():
        cfg[key] = {**cfg.get(key, {}), **value}
    path = folder / f"{replica}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, port


@dataclass
class Replica:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def metric(self, name: str, **labels: str) -> float:
        """A sample of this daemon's /metrics (0 when absent)."""
        status, body = http_get(f"http://127.0.0.1:{self.port}/metrics")
        assert status == 200, body
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v
                                               for k, v in labels.items()):
                    return float(sample.value)
        return 0.0

    def total(self, name: str, **labels: str) -> float:
        """The sum of every sample of ``name`` matching ``labels``."""
        status, body = http_get(f"http://127.0.0.1:{self.port}/metrics")
        assert status == 200, body
        return sum(float(s.value) for f in text_string_to_metric_families(body)
                   for s in f.samples if s.name == name
                   and all(s.labels.get(k) == v for k, v in labels.items()))


def start(config: Path, name: str, port: int, *, broken_claim: bool = False) -> Replica:
    log = config.with_suffix(".log")
    entry = [str(BROKEN_CLAIM)] if broken_claim else ["-m", "ragmon.monitor"]
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, *entry, "run", "-c", str(config)],
                                stdout=fh, stderr=subprocess.STDOUT)
    return Replica(name, port, proc, log)


def wait_ready(replicas: list[Replica], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    for r in replicas:
        while http_get(f"http://127.0.0.1:{r.port}/readyz", timeout=2)[0] != 200:
            if r.proc.poll() is not None or time.monotonic() > deadline:
                r.proc.kill()
                raise AssertionError(f"{r.name} did not become ready: "
                                     f"{r.log.read_text()[-3000:]}")
            time.sleep(0.2)


def stop(replicas: list[Replica]) -> None:
    """SIGTERM every live replica at once; each must exit 0."""
    for r in replicas:
        if r.proc.poll() is None:
            r.proc.terminate()
    for r in replicas:
        code = r.proc.wait(timeout=60)
        assert code in (0, -9), f"{r.name} exited {code}: {r.log.read_text()[-3000:]}"


@dataclass(frozen=True)
class Run:
    probe: str
    slot: datetime
    replica: str
    started_at: datetime
    status: str


def stored_runs(url: str) -> list[Run]:
    store = Store(url)
    try:
        with store.session() as s:
            rows = s.execute(select(ProbeRun.probe, ProbeRun.slot, ProbeRun.replica,
                                    ProbeRun.started_at, ProbeRun.status)).all()
    finally:
        store.close()
    return [Run(*row) for row in rows if row.slot is not None]


def stored_slots(url: str) -> list[ProbeSlot]:
    store = Store(url)
    try:
        with store.session() as s:
            return list(s.scalars(select(ProbeSlot).order_by(ProbeSlot.slot)).all())
    finally:
        store.close()


def slot_problems(runs: list[Run], probes: list[str], interval: float, since: datetime,
                  until: datetime) -> dict[str, list[str]]:
    """Per probe: slots run more than once, and slots from ``since`` to ``until`` (every
    replica was running then) that nobody ran."""
    problems: dict[str, list[str]] = {"duplicate": [], "missing": []}
    for probe in probes:
        counts = Counter(r.slot for r in runs if r.probe == probe)
        problems["duplicate"] += [f"{probe} {s.isoformat()} x{n}"
                                  for s, n in sorted(counts.items()) if n > 1]
        step = timedelta(seconds=interval)
        slot = min((s for s in counts if s >= since), default=until)
        while slot <= until:
            if slot not in counts:
                problems["missing"].append(f"{probe} {slot.isoformat()}")
            slot += step
    return problems
