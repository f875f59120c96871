"""Ingest throughput of a running daemon: vectors per second by request size and encoding.

Starts `ragmon run` (waitress listener, SQLite store in a temporary folder, one query-drift
probe with the defaults: window_size 1000, max_request_bytes 16 MiB) and posts batches of
real MiniLM vectors (384-d, the stdlib docstring corpus, each with its text cut to 200
characters) to ``POST /ingest/<probe>`` over one keep-alive connection from this process,
with the bodies encoded before timing. Two encodings of the same vectors: JSON numbers
(``numpy.tolist()``, as most apps send them) and base64 of little-endian float32.

    .venv/bin/python bench/ingest_throughput.py   # writes bench/results/ingest_throughput.txt

A figure is the median over the requests of one configuration (at least 5, about 20,000
vectors), request time measured from the first byte sent to the answer read.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ragmon.monitor.http import free_port

BENCH = Path(__file__).resolve().parent
PROBE = "q"
BATCHES = {"json": [10, 100, 1000, 1800], "base64": [10, 100, 1000, 5000]}
TARGET_VECTORS = 20_000


def corpus() -> tuple[np.ndarray, list[str]]:
    sys.path.insert(0, str(BENCH))
    from run import corpus_windows

    from ragmon.monitor.demo.corpus import stdlib_corpus

    vectors = corpus_windows()[0]
    return vectors, [c.text[:200] for c in stdlib_corpus()]


def body(vectors: np.ndarray, texts: list[str], start: int, n: int, encoding: str) -> bytes:
    rows = [(start + i) % len(vectors) for i in range(n)]
    items: list[dict[str, Any]] = []
    for r in rows:
        v = vectors[r]
        packed: Any = (base64.b64encode(v.astype("<f4").tobytes()).decode()
                       if encoding == "base64" else v.tolist())
        items.append({"query": texts[r], "vector": packed})
    return json.dumps({"queries": items}).encode()


def start_daemon(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    cfg = {"store": {"url": "sqlite:///ragmon.db"}, "server": {"listen": f"127.0.0.1:{port}"},
           "embedders": {"minilm": {"kind": "sentence-transformers"}},
           "probes": {PROBE: {"kind": "drift", "source": "queries", "embedder": "minilm",
                              "every": "24h", "methods": ["mmd"]}}}
    path = folder / "ragmon.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen([sys.executable, "-m", "ragmon.monitor", "run", "-c", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder)
    # The probe's first run (right after start) loads the model: wait until it has ended.
    want = f'ragmon_probe_last_run_timestamp_seconds{{kind="drift",probe="{PROBE}"'
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as resp:
                if want in resp.read().decode():
                    return proc, port
        except OSError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise RuntimeError("the daemon did not come up")


def post(conn: http.client.HTTPConnection, data: bytes) -> float:
    start = time.perf_counter()
    conn.request("POST", f"/ingest/{PROBE}", body=data,
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    answer = resp.read()
    elapsed = time.perf_counter() - start
    if resp.status != 200:
        raise RuntimeError(f"{resp.status}: {answer[:200]!r}")
    return elapsed


def measure(port: int, vectors: np.ndarray, texts: list[str]) -> list[dict[str, Any]]:
    rows = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    sent = 0
    for encoding, sizes in BATCHES.items():
        for n in sizes:
            requests = max(5, TARGET_VECTORS // n)
            bodies = [body(vectors, texts, sent + i * n, n, encoding) for i in range(requests)]
            sent += requests * n
            times = [post(conn, b) for b in bodies]
            med = statistics.median(times)
            rows.append({"encoding": encoding, "vectors_per_request": n, "requests": requests,
                         "request_bytes": len(bodies[0]), "median_request_s": med,
                         "vectors_per_s": n / med})
            print(json.dumps(rows[-1]), flush=True)
    conn.close()
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    out = ["| encoding | vectors per request | request size | median request time | "
           "vectors per second |", "|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['encoding']} | {r['vectors_per_request']:,} | "
                   f"{r['request_bytes'] / 2**20:.2f} MiB | "
                   f"{r['median_request_s'] * 1000:.0f} ms | {r['vectors_per_s']:,.0f} |")
    return "\n".join(out)


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    vectors, texts = corpus()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as d:
        proc, port = start_daemon(Path(d))
        try:
            rows = measure(port, vectors, texts)
        finally:
            proc.terminate()
            proc.wait(60)
    text = (table(rows) + f"\n\nload average at start {load[0]:.1f}, at end "
            f"{os.getloadavg()[0]:.1f}, on {os.cpu_count()} cores\n")
    (BENCH / "results" / "ingest_throughput.txt").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
