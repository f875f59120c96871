"""Load on the daemon's listener, with real parts: a real daemon, its store, real sockets.

Found in a real trial: of 1,000 concurrent one-item ``POST /ingest/<probe>`` requests, 558
got connection resets (of 100, 56): the listener was wsgiref's simple_server with a listen
backlog of 5, and it held one thread per connection with no read timeout (200 idle
connections held 200 threads). Here 2,000 posts arrive at once and must all be accepted and
counted in the reservoir; then hundreds of connections trickle their headers (slowloris)
while /healthz and /readyz must keep answering fast, and no thread is added for them.
"""

from __future__ import annotations

import errno
import http.client
import json
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from prometheus_client import CollectorRegistry

from ragmon.monitor.app import load_config
from ragmon.monitor.daemon import Daemon
from ragmon.monitor.http import free_port
from ragmon.probes.drift import state

PROBE = "queries"
BURST = 2000  # posts, all in flight at once
CLIENTS = 4  # client threads, each driving a quarter of the connections
SLOW = 400  # slowloris connections
HEALTH_BUDGET = 0.100  # seconds, for the p95 of 20 health requests


def start_daemon(tmp_path: Path, server: dict[str, Any], probes: dict[str, Any],
                 **sections: Any) -> tuple[Daemon, int]:
    port = free_port()
    cfg = {
        "store": {"url": f"sqlite:///{tmp_path / 'ragmon.db'}"},
        "server": {"listen": f"127.0.0.1:{port}", **server},
        "scheduler": {"heartbeat": "1s"},
        "probes": probes,
        **sections,
    }
    path = tmp_path / "ragmon.yaml"
    path.write_text(yaml.safe_dump(cfg))
    daemon = Daemon(load_config(str(path), environ={}), CollectorRegistry())
    try:
        daemon.start()
    except BaseException:
        daemon.shutdown()
        raise
    return daemon, port


def post(port: int, path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body


def _drive(port: int, requests: list[bytes], deadline: float, out: Counter[Any],
           lock: threading.Lock) -> None:
    """Open one connection per request at once, send each, read each answer to EOF;
    count the status codes, or the socket error a connection ended with."""
    sel = selectors.DefaultSelector()
    pending: dict[socket.socket, list[Any]] = {}  # sock -> [request, bytes sent, answer]
    seen: Counter[Any] = Counter()
    for request in requests:
        sock = socket.socket()
        sock.setblocking(False)
        code = sock.connect_ex(("127.0.0.1", port))
        if code not in (0, errno.EINPROGRESS):
            seen[errno.errorcode.get(code, str(code))] += 1
            sock.close()
            continue
        pending[sock] = [request, 0, bytearray()]
        sel.register(sock, selectors.EVENT_WRITE)
    try:
        while pending and time.monotonic() < deadline:
            for key, events in sel.select(timeout=0.5):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                entry = pending[sock]
                try:
                    if events & selectors.EVENT_WRITE:
                        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if err:
                            raise OSError(err, "connect failed")
                        entry[1] += sock.send(entry[0][entry[1]:])
                        if entry[1] == len(entry[0]):
                            sel.modify(sock, selectors.EVENT_READ)
                        continue
                    chunk = sock.recv(65536)
                    if chunk:
                        entry[2] += chunk
                        continue
                    status = bytes(entry[2]).split(b"\r\n", 1)[0].split()
                    seen[int(status[1]) if len(status) > 1 else "no answer"] += 1
                except BlockingIOError:
                    continue
                except OSError as exc:
                    seen[errno.errorcode.get(exc.errno or 0, type(exc).__name__)] += 1
                sel.unregister(sock)
                sock.close()
                del pending[sock]
    finally:
        for sock in pending:
            seen["timed out"] += 1
            sel.unregister(sock)
            sock.close()
        sel.close()
        with lock:
            out.update(seen)


def burst(port: int, requests: list[bytes], clients: int = CLIENTS,
          timeout: float = 180.0) -> Counter[Any]:
    """Send every request at once from ``clients`` threads; the outcome of each."""
    out: Counter[Any] = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + timeout
    threads = [threading.Thread(target=_drive, args=(port, requests[i::clients], deadline,
                                                     out, lock), name=f"burst-{i}")
               for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def timed_get(port: int, path: str) -> tuple[int, float]:
    """GET on a new connection, as a kubelet probe does: (status, seconds)."""
    began = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status, time.perf_counter() - began
    finally:
        conn.close()


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


@pytest.fixture
def ingesting(tmp_path: Path, minilm: Any) -> Iterator[tuple[Daemon, int]]:
    """A daemon with a query-drift probe whose window holds the whole burst; its scheduled
    run finds too few rows to test, so the window is never reset under the burst."""
    daemon, port = start_daemon(tmp_path, {}, {PROBE: {
        "kind": "drift", "source": "queries", "embedder": "minilm", "every": "1h",
        "window_size": 4 * BURST, "min_samples": 100 * BURST,
    }}, embedders={"minilm": {"kind": "sentence-transformers", "model": "all-MiniLM-L6-v2"}})
    daemon.context._embedders["minilm"] = minilm  # the session's model, not a second load
    yield daemon, port
    daemon.shutdown()


def test_a_burst_of_2000_posts_is_all_accepted_and_counted(ingesting: tuple[Daemon, int],
                                                          minilm: Any) -> None:
    daemon, port = ingesting
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(BURST, minilm.dimension))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    requests = [post(port, f"/ingest/{PROBE}", json.dumps({"queries": [
        {"query": f"burst question {i}", "id": str(i),
         "vector": [round(float(x), 5) for x in vectors[i]]}]}).encode())
        for i in range(BURST)]
    health: list[float] = []
    done = threading.Event()

    def watch() -> None:  # for the record only: /healthz during the burst
        while not done.wait(0.2):
            try:
                health.append(timed_get(port, "/healthz")[1])
            except OSError:  # its connection waited in the backlog past the timeout
                health.append(float("inf"))

    watcher = threading.Thread(target=watch, name="health-watch")
    watcher.start()
    began = time.monotonic()
    try:
        outcomes = burst(port, requests)
    finally:
        done.set()
        watcher.join()
    elapsed = time.monotonic() - began
    assert daemon.store is not None
    window = state.peek_window(daemon.store, PROBE)
    print(f"\nburst of {BURST}: {dict(outcomes)} in {elapsed:.1f}s; reservoir seen "
          f"{window.seen}, rows {len(window.items)}; /healthz during the burst: "
          f"median {np.median(health or [0]) * 1000:.0f} ms, "
          f"max {max(health or [0]) * 1000:.0f} ms over {len(health)}")
    assert outcomes == Counter({200: BURST}), dict(outcomes)
    assert window.seen == BURST
    assert sorted(int(it.item_id or -1) for it in window.items) == list(range(BURST))


def test_slowloris_holds_no_thread_and_health_answers(tmp_path: Path) -> None:
    """Hundreds of connections trickle a header byte at a time: they hold no worker
    thread, /healthz and /readyz answer fast meanwhile, and the server closes each slow
    connection once its request is request_timeout late."""
    request_timeout = 5.0
    daemon, port = start_daemon(tmp_path, {"request_timeout": f"{request_timeout:g}s"}, {})
    conns: list[socket.socket] = []
    try:
        for path in ("/healthz", "/readyz"):
            assert timed_get(port, path)[0] == 200
        before = threading.active_count()
        opened = time.monotonic()
        for _ in range(SLOW):
            conn = socket.create_connection(("127.0.0.1", port), timeout=10)
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            conns.append(conn)
        peak = threading.active_count()
        latency: dict[str, list[float]] = {"/healthz": [], "/readyz": []}
        for _ in range(20):
            for conn in conns:
                conn.sendall(b"z")  # one more byte of the header: never complete
            for path, times in latency.items():
                status, seconds = timed_get(port, path)
                assert status == 200
                times.append(seconds)
            peak = max(peak, threading.active_count())
        measured = time.monotonic() - opened
        # Still trickling, every slow connection is closed once request_timeout has passed
        # (checked every second).
        closed: set[int] = set()
        deadline = opened + request_timeout + 5
        while len(closed) < SLOW and time.monotonic() < deadline:
            for i, conn in enumerate(conns):
                if i in closed:
                    continue
                try:
                    conn.sendall(b"z")
                    conn.settimeout(0)
                    try:
                        if conn.recv(1) == b"":
                            closed.add(i)
                    except BlockingIOError:
                        pass
                    finally:
                        conn.settimeout(10)
                except OSError:  # reset or broken pipe: closed by the server
                    closed.add(i)
            time.sleep(0.2)
        cut_after = time.monotonic() - opened
        print(f"\nslowloris of {SLOW}: threads {before} before, at most {peak} while held "
              f"({measured:.1f}s); p95 /healthz {p95(latency['/healthz']) * 1000:.1f} ms, "
              f"/readyz {p95(latency['/readyz']) * 1000:.1f} ms; {len(closed)} closed by the "
              f"server {cut_after:.1f}s after opening")
        assert peak - before <= 3, (before, peak)  # the scheduler may start a job thread
        for path, times in latency.items():
            assert p95(times) < HEALTH_BUDGET, (path, sorted(times))
        assert len(closed) == SLOW
        assert daemon.http is not None
    finally:
        for conn in conns:
            conn.close()
        daemon.shutdown()
