"""What every probe kind is: a config model, one entry point returning a typed result,
the metrics it exports, and a readable rendering for `ragmon probe NAME --once`."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ragmon.monitor.config import ProbeConfig
from ragmon.monitor.errors import ProbeInterrupted, ProbeTimeout

if TYPE_CHECKING:
    from ragmon.monitor.context import ProbeContext

Status = Literal["ok", "failed", "timeout"]


@dataclass(frozen=True)
class MetricSpec:
    """An exported result: ``ragmon_<name>``; ``labels`` are the value's label keys."""

    help: str
    labels: tuple[str, ...] = ()


@dataclass
class ProbeResult:
    """The typed outcome of a run. A failure is a result (status and error), never a crash.

    ``values`` are (name, labels, value) triples; names must be declared in the probe's
    ``METRICS``. ``queries`` are (query id, status, data) rows kept in SQL only.
    ``details`` is free-form JSON for reports, alerts and the CLI (verdicts, evidence).
    """

    status: Status = "ok"
    error: str | None = None
    values: list[tuple[str, dict[str, Any], float]] = field(default_factory=list)
    queries: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    target: str | None = None
    golden_version: str | None = None
    embedder_fingerprint: str | None = None
    target_fingerprint: str | None = None

    def add(self, name: str, value: float, **labels: Any) -> None:
        self.values.append((name, labels, float(value)))

    @classmethod
    def failed(cls, error: str, **kwargs: Any) -> ProbeResult:
        return cls(status="failed", error=error, **kwargs)


class Deadline:
    """A probe's time budget. Long phases call ``check()`` between steps, so a probe past its
    timeout, or one whose daemon is stopping (``stop`` set), stops at the next step instead of
    running on in the background."""

    def __init__(self, seconds: float, stop: threading.Event | None = None):
        self.seconds = seconds
        self.expires = time.monotonic() + seconds
        self.stop = stop

    def remaining(self) -> float:
        return max(0.0, self.expires - time.monotonic())

    def check(self, phase: str = "") -> None:
        if self.stop is not None and self.stop.is_set():
            where = f" during {phase}" if phase else ""
            raise ProbeInterrupted(f"interrupted by shutdown{where}")
        if time.monotonic() > self.expires:
            where = f" during {phase}" if phase else ""
            raise ProbeTimeout(f"timed out after {self.seconds:g}s{where}")


class Probe(ABC):
    """Base of every probe kind. Subclasses set ``kind``, ``Config``, ``METRICS``."""

    kind: ClassVar[str]
    Config: ClassVar[type[ProbeConfig]]
    METRICS: ClassVar[dict[str, MetricSpec]] = {}

    def __init__(self, name: str, config: Any, context: ProbeContext):
        self.name = name
        self.config = config
        self.context = context

    @property
    def target_name(self) -> str | None:
        return getattr(self.config, "target", None)

    @abstractmethod
    def run(self, deadline: Deadline) -> ProbeResult:
        """Do one measurement. Raise on failure; the runner turns exceptions into results."""

    def render(self, result: ProbeResult) -> str:
        """A compact human-readable summary of a result (override per kind)."""
        lines = [f"probe {self.name} ({self.kind}): {result.status}"]
        if result.error:
            lines.append(f"  error: {result.error}")
        for name, labels, value in result.values:
            label_text = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
            lines.append(f"  {name}{'{' + label_text + '}' if label_text else ''} = {value:.6g}")
        return "\n".join(lines)
