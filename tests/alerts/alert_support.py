"""Shared pieces of the alert tests: a real HTTP receiver on 127.0.0.1, config builders and
run records. conftest.py puts this directory on sys.path, so tests import it by name."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ragmon.alerts.config import AlertsConfig
from ragmon.monitor.http import free_port
from ragmon.monitor.store import RunRecord

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP server that records every POST; it can answer errors or stall for a while."""

    server: ThreadingHTTPServer
    requests: list[Request] = field(default_factory=list)
    fail_next: int = 0
    fail_status: int = 500
    delay: float = 0.0
    on_request: Any = None  # called with no argument as each request arrives, before answering
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def ok_requests(self) -> list[Request]:
        return [r for r in self.requests if r.headers.get("x-test-answer") == "200"]

    def wait_for(self, n: int, timeout: float = 10.0) -> list[Request]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.ok_requests) >= n:
                return self.ok_requests
            time.sleep(0.02)
        raise AssertionError(f"expected {n} delivered requests, got {len(self.ok_requests)}")


def _handler(receiver_ref: list[Receiver]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            receiver = receiver_ref[0]
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with receiver.lock:
                status = 200
                if receiver.fail_next > 0:
                    receiver.fail_next -= 1
                    status = receiver.fail_status
                delay = receiver.delay
            if receiver.on_request is not None:
                receiver.on_request()
            if delay:
                time.sleep(delay)
            headers = {k.lower(): v for k, v in self.headers.items()}
            headers["x-test-answer"] = str(status)
            with receiver.lock:
                receiver.requests.append(Request(self.path, headers, body))
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def start_receiver() -> Receiver:
    ref: list[Receiver] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(ref))
    server.daemon_threads = True
    ref.append(Receiver(server))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return ref[0]


def stop_receiver(receiver: Receiver) -> None:
    receiver.server.shutdown()
    receiver.server.server_close()


def alerts_config(data: dict[str, Any], base_dir: Path | None = None) -> AlertsConfig:
    return AlertsConfig.model_validate(data, context={"base_dir": base_dir or Path(".")})


FAST_DELIVERY = {"backoff": "10ms", "max_backoff": "50ms", "timeout": "2s", "poll": "50ms"}


def recall_run(
    recall: float, at: datetime = T0, *, probe: str = "docs-recall", status: str = "ok",
    details: dict[str, Any] | None = None,
) -> RunRecord:
    """A run of a recall probe as the runner stores it (values with k/mode labels)."""
    values: list[tuple[str, dict[str, Any], float]] = [] if status != "ok" else [
        ("recall_ratio", {"k": 10, "mode": "live"}, recall),
        ("recall_ratio", {"k": 10, "mode": "exact"}, 0.9375),
        ("recall_ratio", {"k": 5, "mode": "live"}, recall),
    ]
    return RunRecord(
        probe=probe, kind="recall", target="docs", started_at=at - timedelta(seconds=3),
        finished_at=at, status=status, error=None if status == "ok" else "target down",
        details=details or {}, values=values,
    )


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def probe_sections(folder: Path) -> dict[str, Any]:
    """Config sections for the probes the alert tests' rules watch (docs-recall, canary,
    query-drift), so the loader's rule-to-probe check passes. Nothing here is run."""
    (folder / "golden.jsonl").write_text('{"id": "q1", "query": "reset a password", '
                                         '"relevant": ["doc-1"]}\n')
    return {
        "embedders": {"minilm": {"kind": "sentence-transformers"}},
        "targets": {"docs": {"kind": "faiss", "path": "index.faiss", "embedder": "minilm"}},
        "golden_sets": {"questions": {"path": "golden.jsonl"}},
        "probes": {
            "docs-recall": {"kind": "recall", "target": "docs", "golden_set": "questions",
                            "every": "1h"},
            "canary": {"kind": "canary", "embedder": "minilm", "every": "1h"},
            "query-drift": {"kind": "drift", "source": "queries", "embedder": "minilm",
                            "every": "1h"},
        },
    }


ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"


@contextmanager
def running_alertmanager(folder: Path, receiver: Receiver) -> Iterator[str]:
    """A real Alertmanager on loopback that forwards every alert to ``receiver`` (path /am);
    yields its base URL."""
    config = folder / "alertmanager.yml"
    config.write_text(json.dumps({
        "route": {"receiver": "test", "group_by": ["alertname"], "group_wait": "0s",
                  "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "test", "webhook_configs": [
            {"url": f"{receiver.url}/am", "send_resolved": True}]}],
    }))
    port = free_port()
    proc = subprocess.Popen(
        [ALERTMANAGER, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
         "--cluster.listen-address=", f"--storage.path={folder / 'am-data'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"alertmanager did not start: {proc.stderr.read().decode()[-2000:]}"  # type: ignore[union-attr]
                    ) from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.communicate(timeout=10)  # waits and closes the stderr pipe


def am_alerts(url: str, **filters: str) -> list[dict[str, Any]]:
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    with urllib.request.urlopen(f"{url}/api/v2/alerts?{query}", timeout=5) as response:
        return list(json.load(response))


def wait_until(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)
