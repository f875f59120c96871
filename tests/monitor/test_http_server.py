"""The daemon's listener for real: binding before anything starts, connection timeouts,
the server's own body limit, health checks ahead of queued requests, a clean stop."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from ragmon.monitor import http as http_module
from ragmon.monitor.app import load_config
from ragmon.monitor.config import ServerConfig
from ragmon.monitor.daemon import Daemon
from ragmon.monitor.errors import RagmonError
from ragmon.monitor.http import App, HttpServer, http_get


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(8)
        yield holder.getsockname()[1]


def write_config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "ragmon.yaml"
    path.write_text(yaml.safe_dump({
        "store": {"url": f"sqlite:///{tmp_path / 'ragmon.db'}"},
        "server": {"listen": f"127.0.0.1:{port}"},
        "probes": {"canary": {"kind": "canary", "embedder": "minilm", "every": "1h"}},
        "embedders": {"minilm": {"kind": "sentence-transformers",
                                 "model": "all-MiniLM-L6-v2"}},
    }))
    return path


def test_a_taken_port_fails_the_start_before_anything_runs(tmp_path: Path,
                                                           taken_port: int) -> None:
    daemon = Daemon(load_config(str(write_config(tmp_path, taken_port)), environ={}),
                    CollectorRegistry())
    threads = threading.active_count()
    try:
        with pytest.raises(RagmonError) as caught:
            daemon.start()
        message = str(caught.value)
        assert f"127.0.0.1:{taken_port}" in message and "already in use" in message
        assert "server.listen" in message and "\n" not in message
        # Nothing was started: no scheduler, no store, no thread.
        assert daemon.scheduler is None and daemon.store is None
        assert threading.active_count() == threads
        assert not (tmp_path / "ragmon.db").exists()
    finally:
        daemon.shutdown()


def test_ragmon_run_on_a_taken_port_exits_1_with_one_line(tmp_path: Path,
                                                         taken_port: int) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ragmon.monitor", "run", "--config",
         str(write_config(tmp_path, taken_port))],
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, capture_output=True, text=True,
        timeout=120,
    )
    output = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 1, output
    assert output.splitlines() == [
        f"ragmon: error: cannot listen on 127.0.0.1:{taken_port}: the address is already in "
        "use (another ragmon or another program listens there); stop it or set "
        "server.listen to a free port"
    ]


def app_with(route: Callable[..., Iterable[bytes]]) -> App:
    return App(CollectorRegistry(), lambda: (True, "ok"), lambda: (True, "ok"),
               {"/work": route})


def serve(app: App, **settings: Any) -> HttpServer:
    server = HttpServer(app, "127.0.0.1", 0, ServerConfig(**settings))
    server.start()
    return server


def closed_by_server(conn: socket.socket, within: float) -> float | None:
    """Seconds until the server closed ``conn`` (EOF or reset), or None."""
    began = time.monotonic()
    conn.settimeout(within)
    try:
        data = conn.recv(1024)
    except TimeoutError:
        return None
    except ConnectionResetError:
        data = b""
    return time.monotonic() - began if data == b"" or data.startswith(b"HTTP/") else None


def test_idle_and_slow_connections_are_closed(tmp_path: Path) -> None:
    """A connection that sends nothing is closed after channel_timeout; one that trickles
    its headers (active, so never idle) once its request is request_timeout late."""
    server = serve(app_with(lambda e, sr: []), channel_timeout="2s", request_timeout="3s")
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as idle:
            waited = closed_by_server(idle, within=10)
            assert waited is not None and waited < 2 + 2, waited
        with socket.create_connection(("127.0.0.1", server.port)) as slow:
            began = time.monotonic()
            slow.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
            slow.settimeout(0.5)
            while time.monotonic() - began < 10:
                try:
                    slow.sendall(b"z")
                    if slow.recv(1) == b"":
                        break
                except TimeoutError:
                    continue
                except OSError:
                    break
            assert 3 <= time.monotonic() - began < 3 + 2
    finally:
        server.stop()


def test_the_server_refuses_bodies_over_its_limit_before_the_app() -> None:
    seen: list[int] = []

    def route(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen.append(len(environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))))
        start_response("200 OK", [("Content-Length", "0")])
        return []

    server = serve(app_with(route), max_request_bytes=4096)
    try:
        for size, status in ((4096, b"200"), (4097, b"413")):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
                conn.sendall(b"POST /work HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                             b"Content-Length: %d\r\n\r\n" % size)
                if status == b"200":
                    conn.sendall(b"x" * size)
                answer = conn.recv(1024)
                assert answer.split()[1] == status, answer
        assert seen == [4096]
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            conn.sendall(b"POST /work HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")
            assert conn.recv(1024).split()[1] == b"400"
        assert seen == [4096]
    finally:
        server.stop()


def test_health_checks_are_answered_before_queued_requests() -> None:
    """Two workers busy, three requests waiting: a /healthz arriving last is answered
    next, not after the queue."""
    release = threading.Event()
    order: list[str] = []

    def route(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        release.wait(30)
        order.append(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Length", "0")])
        return []

    app = app_with(route)
    healthz = app.healthz
    app.healthz = lambda: (order.append("/healthz"), healthz())[1]
    server = serve(app, threads=2)
    conns: list[socket.socket] = []
    try:
        for i in range(5):
            conn = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            conn.sendall(f"GET /work/{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            conns.append(conn)
            time.sleep(0.05)  # arrival order
        result: list[tuple[int, str]] = []
        checker = threading.Thread(target=lambda: result.append(
            http_get(f"http://127.0.0.1:{server.port}/healthz")))
        checker.start()
        time.sleep(0.3)
        release.set()
        checker.join(30)
        assert result == [(200, "ok\n")]
        for conn in conns:
            assert conn.recv(1024).startswith(b"HTTP/1.1 200")
        assert order.index("/healthz") <= 2, order  # after the two that were running
    finally:
        release.set()
        for conn in conns:
            conn.close()
        server.stop()


def test_stop_closes_the_listener_and_open_connections() -> None:
    server = serve(app_with(lambda e, sr: []))
    port = server.port
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # half a request
        time.sleep(0.2)
        server.stop()
        assert closed_by_server(conn, within=5) is not None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert not [t for t in threading.enumerate() if t.name.startswith("waitress-")]
    HttpServer(app_with(lambda e, sr: []), "127.0.0.1", port).stop()  # the port is free again


def test_stopping_while_a_request_is_served_lets_it_finish_without_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SIGTERM right after a scrape: the worker thread is still finishing the request when
    the server stops. It ends first, then the connections and the wake-up pipe are closed
    (closed the other way round, the worker's wake-up hit a closed pipe: a logged
    traceback at every such shutdown)."""
    serving = threading.Event()

    def slow(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        serving.set()
        time.sleep(0.5)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"done\n"]

    server = serve(app_with(slow))
    answers: list[tuple[int, str]] = []
    client = threading.Thread(
        target=lambda: answers.append(http_get(f"http://127.0.0.1:{server.port}/work")))
    client.start()
    assert serving.wait(10)
    with caplog.at_level(logging.ERROR, logger="waitress"):
        server.stop()
    client.join(10)
    assert [r.getMessage() for r in caplog.records] == []
    assert answers == [(200, "done\n")]


def _thread_cpu_seconds(thread: threading.Thread) -> float:
    """CPU time a thread of this process has used so far (user + system), from /proc."""
    fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rsplit(")", 1)[1]
    utime, stime = (int(x) for x in fields.split()[11:13])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


CROWD = 900  # connections open at once, under the default connection_limit of 1,000


def test_the_io_thread_does_not_spin_while_workers_send_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found under a burst of 2,000 posts: while a worker held a connection's output lock
    to send its answer, the connection polled as writable but its write handler could do
    nothing, so the I/O thread looped thousands of times a second, each pass over every
    open connection. It held the GIL the workers needed back after each database call, and
    ingest slowed from about 40 posts a second to 10 (898 of 2,000 answered in 90 s).
    Here 900 connections wait while 8 workers answer them, each answer giving up the GIL 20
    times as database calls do. The I/O loop needs a few passes per answer (accept, read,
    wake-up, close); it made 30 to 150 while it spun."""
    passes = [0]
    readable = http_module._Server.readable

    def counted(self: Any) -> bool:  # the listener is asked once per pass of the loop
        passes[0] += 1
        return bool(readable(self))

    monkeypatch.setattr(http_module._Server, "readable", counted)

    def answer(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        for _ in range(20):
            time.sleep(0)  # gives up the GIL, as each sqlite3 call does
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
        return [b"ok\n"]

    server = serve(app_with(answer), threads=8)
    conns: list[socket.socket] = []
    try:
        for _ in range(CROWD):
            conn = socket.create_connection(("127.0.0.1", server.port), timeout=60)
            conn.sendall(b"GET /work HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            conns.append(conn)
        answered = 0
        for conn in conns:
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
            answered += data.startswith(b"HTTP/1.1 200")
        assert answered == CROWD
        assert passes[0] < 8 * CROWD, f"{passes[0]} passes of the I/O loop for {CROWD} answers"
    finally:
        for conn in conns:
            conn.close()
        server.stop()
