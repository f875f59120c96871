"""What every sink is: a config model, and ``send(notification)`` that raises SinkError.

A sink's error messages name the sink and the receiver's host, never a URL path, token or
password (webhook URLs such as Slack's carry their secret in the path).
"""

from __future__ import annotations

import base64
import json
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
    value: float | None = None
    run_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

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
    def send(self, notification: Notification) -> None:
        """Deliver one notification; raise SinkError (naming this sink) when it fails."""

    def error(self, message: str) -> SinkError:
        return SinkError(f"sink {self.name!r} ({self.kind}): {message}")

    def post_json(self, url: str, body: Any, headers: dict[str, str] | None = None) -> bytes:
        """POST ``body`` as JSON; errors name only the receiver's host."""
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
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                answer: bytes = response.read()  # urlopen() is typed Any (HTTP or file)
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
