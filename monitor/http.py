"""The HTTP listener: /metrics, /healthz, /readyz, plus routes probes register (ingest).

prometheus_client's own server answers every path with metrics, so its WSGI app is
mounted under a small dispatcher here instead.
"""

from __future__ import annotations

import logging
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

log = logging.getLogger("ragmon.http")
Check = Callable[[], tuple[bool, str]]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def _text(start_response: Callable[..., Any], status: str, body: str) -> Iterable[bytes]:
    data = (body + "\n").encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(data)))])
    return [data]


class App:
    """WSGI dispatcher; ``routes`` (path prefix -> WSGI app) may grow after start."""

    def __init__(self, registry: CollectorRegistry, healthz: Check, readyz: Check,
                 routes: dict[str, Callable[..., Any]] | None = None):
        self.metrics = make_wsgi_app(registry)
        self.healthz = healthz
        self.readyz = readyz
        self.routes = routes if routes is not None else {}

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return self.metrics(environ, start_response)  # type: ignore[no-any-return]
        if path in ("/healthz", "/readyz"):
            ok, reason = (self.healthz if path == "/healthz" else self.readyz)()
            return _text(start_response, "200 OK" if ok else "503 Service Unavailable", reason)
        for prefix, app in self.routes.items():
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return app(environ, start_response)  # type: ignore[no-any-return]
        if path == "/":
            return _text(start_response, "200 OK", "ragmon: /metrics /healthz /readyz")
        return _text(start_response, "404 Not Found", f"no such path {path!r}")


class HttpServer:
    def __init__(self, app: App, host: str, port: int):
        self._server = make_server(host, port, app, server_class=_Server,
                                   handler_class=_QuietHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="http",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for the demo, tests, benchmarks)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 10.0) -> tuple[int, str]:
    """GET ``url``: (status, body); (0, reason) when nothing answers, as a prober reads it."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)
