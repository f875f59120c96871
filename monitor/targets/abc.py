"""The one protocol every vector index target implements, and the types it returns.

Ids cross this boundary as strings, whatever the engine stores; ``Description.id_type``
says what the engine really keys by (``"int"`` or ``"str"``), so a golden set whose ids
cannot be keys of this index is caught before any number is computed.

Vectors are float32 arrays of shape (n, dimension). Scores are what the engine returned
(similarity or distance, possibly quantized); ragmon recomputes distances itself from
fetched vectors wherever ties matter.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from ragmon.monitor.errors import DimensionMismatch, TargetError

Metric = Literal["cosine", "ip", "l2"]
#: How an exact top-k was computed: the engine's exact mode, or one streaming pass.
ExactMode = Literal["engine", "stream"]
#: What exact search compares against: the vectors as stored (flat storage), the vectors
#: decoded from a quantised index's codes (PQ, SQ: search error only, not quantisation
#: error), or the original vectors from a configured reference source.
GroundTruthOf = Literal["stored", "decoded", "reference"]


@dataclass
class SearchResult:
    """Top-k answers for a batch of queries, in query order.

    ``ids[i]`` may hold fewer than k ids (a shortfall); ``scores[i]`` matches it.
    An exact result always covers every vector in the index (or in the filtered subset):
    ``exact_mode`` says how it was computed, ``"engine"`` (the engine's own exact mode, one
    scan per query) or ``"stream"`` (one pass over the stored vectors for all queries);
    ``scanned`` is how many vectors that pass covered. Both are ``None`` for live results.
    """

    ids: list[list[str]]
    scores: list[list[float]]
    latencies: list[float]
    exact: bool
    exact_mode: ExactMode | None = None
    scanned: int | None = None


@dataclass
class Vectors:
    """Stored vectors read back by id or by sampling; ``missing`` lists ids not found."""

    ids: list[str]
    vectors: np.ndarray
    missing: list[str] = field(default_factory=list)


@dataclass
class Description:
    """What the index is; its fingerprint changes when its configuration does."""

    engine: str
    engine_version: str
    dimension: int
    metric: Metric
    count: int
    id_type: Literal["int", "str"]
    params: dict[str, Any] = field(default_factory=dict)
    #: Live statistics that change without the index changing (dead tuples, segments).
    stats: dict[str, Any] = field(default_factory=dict)
    #: What exact search measures against (see ``GroundTruthOf``).
    ground_truth_of: GroundTruthOf = "stored"
    #: True when live and exact search scores are the metric's own distances computed on
    #: the vectors as stored (no quantisation, no rescoring): fidelity then ranks by the
    #: scores and fetches no vectors. ``l2``: the squared distance; ``ip``: the inner
    #: product; ``cosine``: the similarity that ``cosine_ranking`` names.
    scores_are_distances: bool = False

    def fingerprint(self) -> str:
        """Hash of everything but the count, stats and ground-truth source: a rebuilt or
        re-tuned index gets a new one, a growing one does not."""
        data = asdict(self)
        data.pop("count")
        data.pop("stats")
        data.pop("ground_truth_of")
        data.pop("scores_are_distances")
        text = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class VectorTarget(ABC):
    """A live vector index. Implementations translate engine errors into TargetError."""

    #: False when the engine has no exact mode and none can be emulated (exact_search raises).
    #: A class default that an instance may override (an HTTP target without exact endpoint).
    supports_exact: bool = True
    #: False when stored vectors cannot be read back (fetch, sample and count raise).
    supports_fetch: bool = True
    #: "text" when the engine embeds queries itself: search needs ``texts=``.
    query_input: Literal["vector", "text"] = "vector"
    #: What ``cosine`` ranks by, in live and exact search alike: "direction", the cosine of the
    #: query and the stored vector (the engine normalises stored vectors or divides by their
    #: norms); "query", the inner product of the unit query with the stored vector as stored
    #: (FAISS: quantized vectors decode off the unit sphere). Fidelity breaks ties by it.
    cosine_ranking: Literal["direction", "query"] = "direction"
    #: True when live search is itself a brute-force scan (Qdrant local mode): fidelity is
    #: then not measurable, live and exact are the same computation.
    always_exact: bool = False

    def __init__(self, name: str, config: Any):
        self.name = name
        self.config = config

    @abstractmethod
    def search(
        self,
        vectors: np.ndarray,
        k: int,
        filter: dict[str, Any] | None = None,
        *,
        texts: Sequence[str] | None = None,
    ) -> SearchResult:
        """The live, approximate top-k, with the engine's own knobs as configured.

        ``filter`` is an equality conjunction ``{column: value}``; ``texts`` (the query texts,
        row for row) is only read by targets whose ``query_input`` is ``"text"``.
        """

    @abstractmethod
    def exact_search(
        self,
        vectors: np.ndarray,
        k: int,
        filter: dict[str, Any] | None = None,
        *,
        texts: Sequence[str] | None = None,
        budget: float | None = None,
    ) -> SearchResult:
        """The true top-k (ground truth) over every vector of the same index.

        Call it once with all the queries that need ground truth: a streaming
        implementation reads the index once for all of them. ``budget`` (seconds) bounds
        the work: when it cannot finish within it (projected after the first block, checked
        after each), ``GroundTruthBudgetExceeded`` is raised with how far it got.
        """

    @abstractmethod
    def fetch(self, ids: list[str]) -> Vectors:
        """Stored vectors for ``ids``; ids not found are listed in ``missing``."""

    @abstractmethod
    def sample(self, n: int, seed: int) -> Vectors:
        """Up to ``n`` stored vectors drawn uniformly at random (deterministic per seed)."""

    @abstractmethod
    def count(self) -> int:
        """Number of vectors in the index."""

    @abstractmethod
    def describe(self) -> Description:
        """Dimension, metric, engine and version, index parameters."""

    def document_ids(self, ids: Sequence[str], field: str) -> dict[str, str]:
        """The metadata ``field`` of each of ``ids`` (the document a chunk belongs to), as a
        string; ids without the field, or not found, are left out. Stores that keep no
        metadata beside their vectors (FAISS, a plain HTTP endpoint) refuse."""
        raise TargetError(
            self.name, f"this target ({type(self).__name__}) keeps no metadata, so documents "
            f"cannot be read from field {field!r}; map chunk ids to documents with "
            "documents.pattern or documents.separator instead")

    def pinned(self) -> AbstractContextManager[None]:
        """Within it, this thread's calls read one version of the index: the one its first
        call read (a file-backed index rewritten meanwhile is read again by the next
        ``pinned`` block, never half-way through one). A probe run holds it, so its live
        and exact sides describe the same index. The default pins nothing: an engine
        served over the network answers from its live state."""
        return contextlib.nullcontext()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the default does nothing."""

    def check_queries(self, vectors: np.ndarray, dimension: int) -> np.ndarray:
        """Validate query vectors: 2-D, finite, non-zero, of the index's dimension."""
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2:
            raise TargetError(self.name, f"query vectors must be 2-D, got shape {arr.shape}")
        if arr.shape[1] != dimension:
            raise DimensionMismatch(self.name, arr.shape[1], dimension)
        bad = ~np.isfinite(arr).all(axis=1)
        if bad.any():
            raise TargetError(
                self.name, f"query vectors {np.flatnonzero(bad)[:10].tolist()} contain NaN or Inf"
            )
        zero = ~arr.any(axis=1)
        if zero.any():
            raise TargetError(
                self.name,
                f"query vectors {np.flatnonzero(zero)[:10].tolist()} are all zeros; "
                "they have no direction to search by",
            )
        return np.ascontiguousarray(arr)
