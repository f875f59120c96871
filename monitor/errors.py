"""Every error ragmon raises on purpose, in one tree.

    RagmonError
    ├── ConfigError            the config file or environment is wrong; carries every issue found
    ├── StoreError             the SQL store cannot be used
    │   ├── StoreUnavailable       cannot connect / the file cannot be opened
    │   ├── SchemaError            the schema is not the one this ragmon knows
    │   └── ClaimLost              a slot claim ran out before its run was stored
    ├── EmbedderError          an embedding model cannot be loaded or run
    ├── TargetError            a vector index cannot answer (names the target and endpoint)
    │   ├── TargetUnavailable      down, unreachable, timed out
    │   ├── DimensionMismatch      query vectors and index disagree on dimension
    │   ├── TargetResponseError    the engine answered something ragmon cannot read
    │   └── GroundTruthBudgetExceeded  exact search could not finish within its time budget
    ├── GoldenSetError         a golden set file is malformed (names file and line)
    ├── DriftError             drift statistics cannot be computed
    │   ├── InsufficientData       fewer samples than the method needs
    │   └── FingerprintMismatch    windows come from different embedding pipelines
    ├── ProbeTimeout           a probe ran past its timeout
    ├── ProbeInterrupted       the daemon is stopping; a run ends at its next check
    └── AlertError             alert rules or sinks
        └── SinkError              one notification could not be delivered

Lower-level exceptions (SQLAlchemy, OSError, the vector stores' clients) are translated
where they cross into ragmon, with ``raise X(...) from exc``, so that messages name what
failed and what to do. Messages never contain secrets: database URLs are rendered with
the password hidden, and secret values are never interpolated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class RagmonError(Exception):
    """Base class of every error ragmon raises on purpose."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config: where (file and dotted key path) and what."""

    source: str
    path: str
    message: str
    #: Something that may be fine later (a file not there yet): ``check-config`` prints it
    #: as a warning, and ``check-config --strict`` as an error.
    warning: bool = False

    def __str__(self) -> str:
        where = f"{self.source}: {self.path}" if self.path else self.source
        return f"{where}: {self.message}"


class ConfigError(RagmonError):
    """The configuration is invalid. ``issues`` holds every problem found, not just the first."""

    def __init__(self, issues: Sequence[ConfigIssue]):
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


class StoreError(RagmonError):
    """The SQL store cannot be used."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or opened."""


class SchemaError(StoreError):
    """The database schema is not at a revision this ragmon can run against."""


class ClaimLost(StoreError):
    """A replica's claim on a schedule slot ran out (another replica took the slot over)
    before its run was stored; the run is not stored."""


class EmbedderError(RagmonError):
    """An embedding model cannot be loaded or run."""


class TargetError(RagmonError):
    """A vector index target failed; the message names the target and its endpoint."""

    def __init__(self, target: str, message: str):
        self.target = target
        super().__init__(f"target {target!r}: {message}")


class TargetUnavailable(TargetError):
    """The vector store is down, unreachable or timed out."""


class DimensionMismatch(TargetError):
    """Query vectors and the index have different dimensions."""

    def __init__(self, target: str, query_dim: int, index_dim: int):
        self.query_dim = query_dim
        self.index_dim = index_dim
        super().__init__(
            target,
            f"query vectors have dimension {query_dim} but the index has dimension "
            f"{index_dim}; the embedder does not match the one that built the index",
        )


class TargetResponseError(TargetError):
    """The engine answered with something ragmon cannot interpret."""


class GroundTruthBudgetExceeded(TargetError):
    """Exact search stopped (or was not started) because it could not finish within its
    time budget. ``scanned`` of ``total`` vectors were covered for ``queries`` queries in
    ``elapsed`` seconds, so a caller can derive a rate and size a smaller query subset."""

    def __init__(self, target: str, *, budget: float, elapsed: float, scanned: int,
                 total: int, queries: int):
        self.budget = budget
        self.elapsed = elapsed
        self.scanned = scanned
        self.total = total
        self.queries = queries
        super().__init__(
            target,
            f"exact search of {queries} queries over {total} vectors cannot finish within "
            f"its budget of {budget:g}s ({scanned} vectors scanned in {elapsed:.3g}s); "
            "raise exact_budget or measure fewer queries",
        )


class GoldenSetError(RagmonError):
    """A golden set file is malformed."""

    def __init__(self, source: str, line: int | None, message: str):
        self.source = source
        self.line = line
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")


class DriftError(RagmonError):
    """A drift statistic cannot be computed."""


class InsufficientData(DriftError):
    """A window holds fewer samples than the method needs."""

    def __init__(self, what: str, have: int, need: int):
        self.have = have
        self.need = need
        super().__init__(f"insufficient data: {what} has {have} samples, {need} needed")


class FingerprintMismatch(DriftError):
    """Two windows were embedded by different pipelines and cannot be compared."""


class ProbeTimeout(RagmonError):
    """A probe ran past its configured timeout."""



class ProbeInterrupted(RagmonError):
    """The daemon is stopping: a run stops at its next ``Deadline.check`` and is not stored."""

class AlertError(RagmonError):
    """Alert rules or notification sinks."""


class SinkError(AlertError):
    """One notification could not be delivered."""
