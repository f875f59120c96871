"""A real recall regression, end to end: one firing notification, then one resolved.

The daemon runs the real recall probe on a FAISS index of the standard-library docs (real
MiniLM embeddings, the demo's 52 golden questions). The index file is then replaced, as a
bad rebuild would, by an IVF-PQ index probed with one list; the probe's live recall drops,
the rule fires and the webhook receiver (a real HTTP server) gets one notification carrying
the run's verdict. Restoring the good index resolves it, with one resolved notification.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import yaml
from prometheus_client import CollectorRegistry

from ragmon.monitor.app import load_config
from ragmon.monitor.daemon import Daemon
from ragmon.monitor.demo import scenario
from ragmon.monitor.demo.corpus import stdlib_corpus
from ragmon.monitor.demo.embeddings import cached_encode

from .alert_support import Receiver


def write_config(tmp_path: Path, receiver: Receiver) -> Path:
    cfg: dict[str, Any] = {
        "store": {"url": f"sqlite:///{tmp_path / 'ragmon.db'}"},
        "server": {"listen": "127.0.0.1:0"},
        "embedders": {"minilm": {"kind": "sentence-transformers"}},
        "targets": {"docs": {"kind": "faiss", "path": "index.faiss", "ids_path": "index.ids",
                             "metric": "cosine", "embedder": "minilm"}},
        "golden_sets": {"questions": {"path": "golden.jsonl"}},
        "probes": {"docs-recall": {"kind": "recall", "target": "docs",
                                   "golden_set": "questions", "documents": {"separator": "#"},
                                   "every": "1h", "timeout": "5m", "jitter": 0}},
        "alerts": {
            "delivery": {"poll": "100ms", "backoff": "100ms"},
            "sinks": {"hook": {"kind": "webhook", "url": receiver.url}},
            "rules": {"DocsRecallLow": {
                "probe": "docs-recall", "field": "recall_ratio",
                "match": {"k": 10, "mode": "live"}, "condition": "< 0.6",
                "severity": "critical",
                "summary": "docs recall@10 is {{ '%.2f' | format(value) }} "
                           "({{ details.verdict }})"}},
        },
    }
    path = tmp_path / "ragmon.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def replace_atomically(index: Any, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    faiss.write_index(index, str(tmp))
    os.replace(tmp, path)


def bad_rebuild(vectors: np.ndarray) -> Any:
    """IVF-PQ with 64 lists, 2-byte codes, nprobe 1: a cheap rebuild that misses a lot."""
    quantizer = faiss.IndexFlatIP(vectors.shape[1])
    index = faiss.IndexIVFPQ(quantizer, vectors.shape[1], 64, 2, 8, faiss.METRIC_INNER_PRODUCT)
    index.train(vectors)
    index.add(vectors)
    index.nprobe = 1
    return index


def test_recall_regression_fires_once_and_resolves_once(
    tmp_path: Path, receiver: Receiver, minilm: Any
) -> None:
    scenario.build_index(tmp_path, io.StringIO())
    shutil.copyfile(str(files("ragmon.monitor.demo") / "golden.jsonl"), tmp_path / "golden.jsonl")
    good = tmp_path / "good.faiss"
    shutil.copyfile(tmp_path / "index.faiss", good)
    daemon = Daemon(load_config(write_config(tmp_path, receiver), environ={}),
                    CollectorRegistry())
    daemon.start()
    try:
        # The daemon's own first run (a second after the start) goes first: run alongside
        # the index swap below, it read the good index and then the degraded one, and its
        # mixed verdict could be the one notified.
        assert daemon.store is not None
        deadline = time.monotonic() + 120
        while not daemon.store.latest_runs(["docs-recall"]) or daemon.runner.live_threads():
            assert time.monotonic() < deadline, "the daemon's first run did not finish"
            time.sleep(0.2)
        healthy, _ = daemon.runner.run("docs-recall")
        assert healthy.status == "ok"
        time.sleep(1.0)
        assert receiver.ok_requests == []

        vectors = cached_encode(minilm, [c.text for c in stdlib_corpus()])
        replace_atomically(bad_rebuild(np.ascontiguousarray(vectors)), tmp_path / "index.faiss")
        degraded, _ = daemon.runner.run("docs-recall")
        assert degraded.status == "ok", degraded.error
        live10 = [v for n, labels, v in degraded.values
                  if n == "recall_ratio" and labels == {"k": 10, "mode": "live"}]
        assert live10 and live10[0] < 0.6, (live10, degraded.details.get("verdict"))
        [firing] = receiver.wait_for(1, timeout=30)
        body = firing.json()
        assert (body["status"], body["alert"]["name"]) == ("firing", "DocsRecallLow")
        assert body["alert"]["annotations"]["summary"] == (
            f"docs recall@10 is {body['alert']['value']:.2f} ({degraded.details['verdict']})")
        assert body["alert"]["value"] < 0.6
        assert degraded.details["verdict"] == "index"
        # The regressed queries carry their full text, for notifications to quote.
        golden = {row["id"]: row["query"] for row in map(
            json.loads, (tmp_path / "golden.jsonl").read_text().splitlines())}
        regressed = degraded.details["regressed"]
        assert regressed and all(r["query"] == golden[r["query_id"]] for r in regressed)
        daemon.runner.run("docs-recall")  # still degraded: no second notification
        time.sleep(1.5)
        assert len(receiver.ok_requests) == 1

        shutil.copyfile(good, tmp_path / "index.faiss.tmp")
        os.replace(tmp_path / "index.faiss.tmp", tmp_path / "index.faiss")
        healed, _ = daemon.runner.run("docs-recall")
        assert healed.status == "ok"
        requests = receiver.wait_for(2, timeout=30)
        time.sleep(1.5)
        assert [r.json()["status"] for r in receiver.ok_requests] == ["firing", "resolved"]
        assert requests[1].json()["alert"]["endsAt"] is not None
    finally:
        daemon.shutdown()
