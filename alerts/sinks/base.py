"""What every sink is: a config model, and ``send(notification)`` that raises SinkError.

A sink's error messages name the sink and the receiver's host, never a URL path, token or
password (webhook URLs such as Slack's carry their secret in the path).

A send ends by its deadline (a ``time.monotonic()`` value): the sink's ``timeout`` from the
start, or the earlier deadline the delivery worker gives so that the send ends well before
its claim on the notification does. Socket timeouts only bound each read, and a receiver
that answers one byte at a time never trips them; so every read and write here first sets
the socket's timeout to the time left, and fails once none is left.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from ragmon.monitor.config import KindConfig
from ragmon.monitor.errors import SinkError


@dataclass
class Notification:
    """One alert event as sinks see it (stored as JSON in the delivery outbox)."""

    status: str  # firing | resolved
    rule: str
    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str
    ends_at: str | None = None
    generator_url: str = ""
    #: The watched value: a number, or text (a run status, a verdict).
    value: float | str | None = None
    run_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    run_status: str | None = None
    #: Why the run failed (a failed run has no details to explain it).
    error: str | None = None

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Notification:
        return cls(**payload)

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "warning")

    @property
    def summary(self) -> str:
        return self.annotations.get("summary", self.rule)


class Sink(ABC):
    """Base of every sink kind. Subclasses set ``kind`` and ``Config`` and write ``send``."""

    kind: ClassVar[str]
    Config: ClassVar[type[KindConfig]]

    def __init__(self, name: str, config: Any, timeout: float = 10.0):
        self.name = name
        self.config = config
        self.timeout = float(getattr(config, "timeout", None) or timeout)

    @property
    def send_resolved(self) -> bool:
        return bool(getattr(self.config, "send_resolved", True))

    @abstractmethod
    def send(self, notification: Notification, deadline: float | None = None) -> None:
        """Deliver one notification by ``deadline`` (``time.monotonic()``; default: the
        sink's timeout from now); raise SinkError (naming this sink) when it fails."""

    def deadline(self, by: float | None = None) -> float:
        """When a send starting now must end: after the sink's timeout, or ``by`` if sooner."""
        own = time.monotonic() + self.timeout
        return own if by is None else min(own, by)

    def error(self, message: str) -> SinkError:
        return SinkError(f"sink {self.name!r} ({self.kind}): {message}")

    def post_json(self, url: str, body: Any, headers: dict[str, str] | None = None,
                  deadline: float | None = None) -> bytes:
        """POST ``body`` as JSON, ending by ``deadline``; errors name only the receiver's host.

        A 2xx status means the receiver took the notification: a body still trickling at the
        deadline is cut short without failing the send (a retry would deliver it twice)."""
        deadline = self.deadline(deadline)
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        parts = urllib.parse.urlsplit(url)
        host = parts.netloc.rpartition("@")[2] or "?"
        headers = {"Content-Type": "application/json", "User-Agent": "ragmon", **(headers or {})}
        if parts.username is not None:  # https://user:password@host/... means basic auth
            user, password = (urllib.parse.unquote(p or "") for p in (parts.username,
                                                                      parts.password))
            pair = f"{user}:{password}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
            url = urllib.parse.urlunsplit(parts._replace(netloc=host))
        request = urllib.request.Request(url, data=data, method="POST", headers=headers)
        opener = urllib.request.build_opener(_DeadlineHTTPHandler(deadline),
                                             _DeadlineHTTPSHandler(deadline))
        try:
            with opener.open(request, timeout=time_left(deadline)) as response:
                try:
                    answer: bytes = response.read()  # open() is typed Any (HTTP or file)
                except TimeoutError:
                    return b""  # accepted (2xx); the rest of the answer is not waited for
                return answer
        except urllib.error.HTTPError as exc:
            raise self.error(f"{host} answered HTTP {exc.code}") from None
        except urllib.error.URLError as exc:
            raise self.error(f"cannot reach {host}: {_reason(exc.reason)}") from None
        except (TimeoutError, OSError) as exc:
            raise self.error(f"cannot reach {host}: {_reason(exc)}") from None


def _reason(reason: Any) -> str:
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return type(reason).__name__ if not isinstance(reason, str) else reason


def time_left(deadline: float) -> float:
    """Seconds until ``deadline``; TimeoutError when it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left


class DeadlineReader(io.RawIOBase):
    """Reads a socket, each read bounded by the time left until ``deadline``: a peer that
    sends one byte at a time still cannot keep the reader past the deadline.

    It holds its own reference to the socket (like ``socket.makefile``), so the socket stays
    open while it reads even when its owner closes it (http.client does, after the head)."""

    def __init__(self, sock: socket.socket, deadline: float):
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        self._sock.settimeout(time_left(self._deadline))
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


def deadline_file(sock: socket.socket, deadline: float) -> io.BufferedReader:
    """``sock.makefile("rb")`` whose reads end by ``deadline``."""
    return io.BufferedReader(DeadlineReader(sock, deadline))


class _DeadlineSocket:
    """A connected socket as http.client uses it (``sendall``, ``makefile``, ``close``), with
    every send and read bounded by the deadline."""

    def __init__(self, sock: socket.socket, deadline: float):
        self._sock = sock
        self._deadline = deadline

    def sendall(self, data: Any) -> None:
        self._sock.settimeout(time_left(self._deadline))
        self._sock.sendall(data)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return deadline_file(self._sock, self._deadline)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _DeadlineHTTPConnection(http.client.HTTPConnection):
    """Connects within the time left, then reads and writes through a _DeadlineSocket."""

    def __init__(self, host: str, *, deadline: float, **kwargs: Any):
        super().__init__(host, **kwargs)
        self.deadline = deadline

    def connect(self) -> None:
        self.timeout = time_left(self.deadline)  # connect (and TLS handshake) in time left
        super().connect()
        self.sock = _DeadlineSocket(self.sock, self.deadline)


class _DeadlineHTTPSConnection(http.client.HTTPSConnection):
    """The same over TLS: the handshake is bounded by the time left when connecting."""

    def __init__(self, host: str, *, deadline: float, **kwargs: Any):
        super().__init__(host, **kwargs)
        self.deadline = deadline

    def connect(self) -> None:
        self.timeout = time_left(self.deadline)
        super().connect()
        self.sock = _DeadlineSocket(self.sock, self.deadline)


class _DeadlineHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: float):
        super().__init__()
        self.deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_DeadlineHTTPConnection, req,  # type: ignore[arg-type]
                            deadline=self.deadline)


class _DeadlineHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: float):
        super().__init__()
        self.deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_DeadlineHTTPSConnection, req,  # type: ignore[arg-type]
                            context=self._context, deadline=self.deadline)  # type: ignore[attr-defined]
