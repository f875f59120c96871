"""The HTTP listener: /metrics, /healthz, /readyz, plus routes probes register (ingest).

prometheus_client's own server answers every path with metrics, so its WSGI app is
mounted under a small dispatcher here instead.

The server is waitress. One I/O thread reads and buffers every connection, so a slow or idle
client holds no worker thread; a fixed pool of ``server.threads`` workers runs the app on
complete requests. Beyond ``server.connection_limit`` open connections, new ones wait in the
kernel's listen backlog (``server.backlog``) instead of being reset. A connection idle for
``server.channel_timeout``, or whose request has not arrived whole ``server.request_timeout``
after its first byte (a client trickling its headers), is closed. Bodies above
``server.max_request_bytes`` get 413 before they are read.

The socket is bound when the server is built (the daemon builds it before anything else
starts): a taken port is a one-line :class:`ListenError`, not a traceback.
"""

from __future__ import annotations

import errno
import logging
import math
import resource
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, make_wsgi_app
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from ragmon.monitor.config import ServerConfig
from ragmon.monitor.errors import RagmonError

log = logging.getLogger("ragmon.http")
Check = Callable[[], tuple[bool, str]]
#: Largest request head (request line and headers); larger ones get 431.
MAX_HEADER_BYTES = 64 * 1024
#: Answered before any request already waiting for a worker thread.
FIRST_PATHS = frozenset({"/healthz", "/readyz"})
#: File descriptors kept free beside the connections (store, model files, logs, pipes).
RESERVED_FDS = 256


class ListenError(RagmonError):
    """The listen address cannot be bound (taken, not on this machine, not permitted)."""


class _Channel(HTTPChannel):  # type: ignore[misc]  # waitress is untyped
    """A waitress connection that remembers when the request being received began, and
    that the I/O thread does not poll for writing while a worker is sending on it."""

    request_started = 0.0

    def writable(self) -> bool:
        # While a worker holds the output lock to send its answer, waitress' write handler
        # can do nothing, yet the connection polled as writable: the I/O thread spun, each
        # pass over every open connection, holding the GIL the workers needed back after
        # each database call (a burst of 2,000 posts ran at a quarter of its speed). The
        # worker wakes the I/O thread itself when it leaves output unsent or finishes.
        if self.requests and self.total_outbufs_len and not (
                self.will_close or self.close_when_flushed):
            if not self.outbuf_lock.acquire(False):
                return False
            self.outbuf_lock.release()
        return bool(super().writable())

    def received(self, data: bytes) -> bool:
        if self.request is None and data:
            self.request_started = time.time()
        return bool(super().received(data))


class _Server(TcpWSGIServer):  # type: ignore[misc]  # waitress is untyped
    """waitress' TCP server, also closing connections whose request is overdue."""

    channel_class = _Channel
    request_timeout = 30.0

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # closes connections idle past channel_timeout
        cutoff = now - self.request_timeout
        for channel in list(self.active_channels.values()):
            if channel.request is not None and not channel.requests \
                    and channel.request_started < cutoff:
                channel.will_close = True


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


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not yet listening); ListenError says why not."""
    where = _address(host, port)
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise ListenError(f"cannot listen on {where}: unknown host ({exc.strerror}); set "
                          f"server.listen to an address of this machine, like "
                          f"0.0.0.0:{port}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restarts: TIME_WAIT
        sock.bind(sockaddr)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            why = ("the address is already in use (another ragmon or another program "
                   "listens there); stop it or set server.listen to a free port")
        elif exc.errno == errno.EADDRNOTAVAIL:
            why = ("no interface of this machine has that address; set server.listen to one "
                   f"of its addresses, or 0.0.0.0:{port}")
        elif exc.errno == errno.EACCES:
            why = "permission denied; use a port above 1023 in server.listen"
        else:
            why = f"{exc.strerror}; set server.listen to an address this machine can use"
        raise ListenError(f"cannot listen on {where}: {why}") from None
    return sock


def _connection_limit(wanted: int) -> int:
    """``wanted``, after raising the soft open-files limit to fit it (up to the hard limit);
    lower, with a warning, when the hard limit is too low: past it accept() would fail."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + RESERVED_FDS
    if soft == resource.RLIM_INFINITY or soft >= need:
        return wanted
    target = need if hard == resource.RLIM_INFINITY else min(need, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    except (ValueError, OSError):
        pass
    if soft >= need:
        return wanted
    fitted = max(16, soft - RESERVED_FDS)
    log.warning("open-files limit %d is too low for server.connection_limit %d; serving at "
                "most %d connections (raise `ulimit -n`)", soft, wanted, fitted)
    return fitted


class _Dispatcher(ThreadedTaskDispatcher):  # type: ignore[misc]  # waitress is untyped
    """waitress' worker pool, where health checks go to the front of the queue: a burst of
    ingest requests must not fail the liveness probe. (No queue-depth warning per request:
    a burst would log one line per request.)"""

    def add_task(self, task: Any) -> None:
        requests: list[Any] = getattr(task, "requests", None) or []  # the channel's
        first = bool(requests) and getattr(requests[0], "path", None) in FIRST_PATHS
        with self.lock:
            if first:
                self.queue.appendleft(task)
            else:
                self.queue.append(task)
            self.queue_cv.notify()


class HttpServer:
    """``app`` served on ``host:port`` by waitress, sized by ``config`` (defaults: a default
    ServerConfig). The socket is bound here; serving starts with :meth:`start`."""

    def __init__(self, app: Callable[..., Any], host: str, port: int,
                 config: ServerConfig | None = None):
        cfg = config if config is not None else ServerConfig()
        self._threads = cfg.threads
        self._map: dict[int, Any] = {}
        self._dispatcher = _Dispatcher()  # its workers start in start()
        sock = bind(host, port)
        try:
            shortest = min(cfg.channel_timeout, cfg.request_timeout)
            adj = Adjustments(
                sockets=[sock], threads=cfg.threads, backlog=cfg.backlog,
                connection_limit=_connection_limit(cfg.connection_limit),
                channel_timeout=math.ceil(cfg.channel_timeout),
                cleanup_interval=max(1, math.floor(shortest / 4)),
                max_request_body_size=cfg.max_request_bytes + 1,  # waitress refuses >= it
                max_request_header_size=MAX_HEADER_BYTES,
                asyncore_use_poll=True,  # select() cannot watch descriptors above 1023
                ident="ragmon", log_socket_errors=False, expose_tracebacks=False,
            )
            self._server = _Server(
                app, map=self._map, _sock=sock, dispatcher=self._dispatcher, adj=adj,
                sockinfo=(sock.family, sock.type, sock.proto, sock.getsockname()),
                bind_socket=False,
            )
        except BaseException:
            sock.close()
            raise
        self._server.request_timeout = cfg.request_timeout
        self.port = int(self._server.effective_port)
        self._thread = threading.Thread(target=self._server.run, name="http", daemon=True)
        self._stopped = False

    def start(self) -> None:
        self._dispatcher.set_thread_count(self._threads)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Close the listener and every connection; wait (up to ``timeout``) for requests
        being served."""
        if self._stopped:
            return
        self._stopped = True
        # Requests being served finish first (their worker wakes the I/O thread through the
        # trigger pipe, which must still be open), then every connection and the loop close.
        self._dispatcher.shutdown(cancel_pending=True, timeout=timeout)
        if self._thread.is_alive():
            self._server.trigger.pull_trigger(self._close_all)  # in the I/O thread: loop ends
            self._thread.join(timeout)
        else:
            self._close_all()

    def _close_all(self) -> None:
        for channel in list(self._server.active_channels.values()):
            if channel.request is not None:
                channel.request.close()  # a partly received body may sit in a temp file
            channel.handle_close()
        wasyncore.close_all(self._map, ignore_all=True)


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
