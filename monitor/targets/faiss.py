"""FAISS: an index file on disk, any factory type (Flat, HNSW, IVF, PQ and their mixes).

Ids: an ``IndexIDMap``/``IndexIDMap2`` wrapper carries integer ids in the file; otherwise an
optional sidecar ``ids_path`` (UTF-8 text, one id per line, line i names the i-th vector
added) gives string ids; with neither, the vector's position is its id.

The file is checked on every call and re-opened when its (mtime, size, inode) changes, so a
rebuilt index written with an atomic rename is seen at the next call, except inside a
``pinned()`` block (a probe run): there a thread keeps the version its first call read. It
is read from one open file descriptor, so a rename during the read yields the complete old
index (and the new one next time), never a mix.

Exact search is one streaming pass over every stored vector for all queries, block by
block (``exact_memory`` caps a block): read in place when the index keeps them flat (Flat,
HNSWFlat), decoded per inverted list (IVF) or reconstructed (PQ, SQ) otherwise; decoded
vectors are what a quantised index really compares against (``ground_truth_of:
decoded``). ``ground_truth.vectors`` names the original vectors instead (``reference``).
With flat storage both searches score by the exact metric over the stored vectors, so the
scores are distances (``Description.scores_are_distances``) and fidelity needs no fetch.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ragmon.monitor.config import ConfigPath, Strict, TargetConfig
from ragmon.monitor.errors import TargetError, TargetResponseError, TargetUnavailable
from ragmon.monitor.targets import _faiss_exact
from ragmon.monitor.targets._exact import DEFAULT_BLOCK, rows_within, stream_exact
from ragmon.monitor.targets._helpers import (
    ByteSize,
    check_k,
    choose,
    engine_errors,
    no_filter,
)
from ragmon.monitor.targets.abc import Description, Metric, SearchResult, Vectors, VectorTarget


class FaissGroundTruth(Strict):
    """Where the original vectors of a quantised FAISS index are."""

    vectors: ConfigPath = Field(description="A .npy array or a flat .faiss index of the "
                                "original vectors, row i being the i-th vector added.")


class FaissConfig(TargetConfig):
    """A FAISS index file (see docs/adapters.md)."""

    kind: Literal["faiss"]
    path: ConfigPath = Field(description="The index file (faiss.write_index); re-opened when "
                             "it changes on disk.")
    ids_path: ConfigPath | None = Field(
        default=None, description="Text file, one id per line, line i naming the i-th vector "
        "added; for indexes without an IDMap wrapper.")
    metric: Metric | None = Field(
        default=None, description="Defaults to the index's metric (ip or l2); say `cosine` when "
        "the stored vectors are normalised (queries are then normalised too).")
    ef_search: int | None = Field(default=None, ge=1, description="HNSW efSearch for live "
                                  "search; the file's value when unset.")
    nprobe: int | None = Field(default=None, ge=1, description="IVF lists probed in live "
                               "search; the file's value when unset.")
    exact_memory: ByteSize = Field(
        default=DEFAULT_BLOCK, description="Size of one block of vectors in the exact search "
        "pass; every vector is searched, a block at a time, whatever the index size.")
    ground_truth: FaissGroundTruth | None = Field(
        default=None, description="Original vectors for ground truth on a quantised index "
        "(PQ, SQ); without it, ground truth is over the decoded vectors.")


@dataclass
class _Loaded:
    """One version of the index file, with everything derived from it."""

    version: tuple[Any, ...]
    index: Any  # what is searched: the file's top-level index, knobs applied
    inner: Any  # the index under an IDMap wrapper (or the same index)
    labels: np.ndarray | list[str] | None  # position -> id; None: labels come from the index
    id_type: Literal["int", "str"]
    positions: dict[str, int] | None = None
    sorted_ids: list[str] | None = None  # the ids in sampling order, sorted once per version
    extra: dict[str, Any] = field(default_factory=dict)


class FaissTarget(VectorTarget):
    """Search a FAISS index file in process."""

    config: FaissConfig
    #: FAISS has no cosine: ``cosine`` is inner product with the unit query over the stored
    #: (for PQ, decoded) vectors, whose norms need not be 1.
    cosine_ranking = "query"

    def __init__(self, name: str, config: FaissConfig):
        super().__init__(name, config)
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()  # probes in parallel threads: load each version once
        self._pins = threading.local()  # per thread: the version a pinned block holds

    # -- loading ---------------------------------------------------------------------------

    def _stat(self, path: Any, what: str = "index file") -> tuple[int, int, int]:
        try:
            st = os.stat(path)
        except FileNotFoundError as exc:
            raise TargetUnavailable(self.name, f"{what} {str(path)!r} does not exist") from exc
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    @contextlib.contextmanager
    def pinned(self) -> Iterator[None]:
        """This thread's calls read the version of the file its first call in the block
        read; blocks nest (the outermost one decides)."""
        depth = getattr(self._pins, "depth", 0)
        if depth == 0:
            self._pins.loaded = None
        self._pins.depth = depth + 1
        try:
            yield
        finally:
            self._pins.depth = depth
            if depth == 0:
                self._pins.loaded = None

    def _current(self) -> _Loaded:
        held: _Loaded | None = getattr(self._pins, "loaded", None)
        if held is not None:
            return held
        cfg = self.config
        version = (self._stat(cfg.path),
                   self._stat(cfg.ids_path, "ids file") if cfg.ids_path else None)
        with self._lock:
            if self._loaded is None or self._loaded.version != version:
                self._loaded = self._load()
            loaded = self._loaded
        if getattr(self._pins, "depth", 0):
            self._pins.loaded = loaded
        return loaded

    def _read_index(self) -> tuple[Any, tuple[int, int, int]]:
        faiss = _faiss()

        path = self.config.path
        with engine_errors(self.name, f"index file {str(path)!r}"):
            with open(path, "rb") as fh:
                st = os.fstat(fh.fileno())
                index = faiss.read_index(faiss.PyCallbackIOReader(fh.read, 1 << 22))
        return index, (st.st_mtime_ns, st.st_size, st.st_ino)

    def _read_ids(self) -> tuple[list[str] | None, tuple[int, int, int] | None]:
        if self.config.ids_path is None:
            return None, None
        with engine_errors(self.name, f"ids file {str(self.config.ids_path)!r}"):
            with open(self.config.ids_path, encoding="utf-8") as fh:
                st = os.fstat(fh.fileno())
                ids = fh.read().splitlines()
        return ids, (st.st_mtime_ns, st.st_size, st.st_ino)

    def _load(self) -> _Loaded:
        faiss = _faiss()

        index, index_version = self._read_index()
        sidecar, ids_version = self._read_ids()
        top = faiss.downcast_index(index)
        wrapped = isinstance(top, faiss.IndexIDMap | faiss.IndexIDMap2)
        inner = faiss.downcast_index(top.index) if wrapped else top
        labels: np.ndarray | list[str] | None
        if wrapped:
            labels, id_type = faiss.vector_to_array(top.id_map), "int"
        elif sidecar is not None:
            if len(sidecar) != index.ntotal:
                raise TargetResponseError(
                    self.name,
                    f"ids file {str(self.config.ids_path)!r} has {len(sidecar)} lines but the "
                    f"index holds {index.ntotal} vectors; they must be written together",
                )
            labels, id_type = sidecar, "str"
        else:
            labels, id_type = None, "int"
        self._apply_knobs(index)
        # keep ``index`` itself: it owns the C++ object that ``top`` and ``inner`` point into
        loaded = _Loaded((index_version, ids_version), top, inner, labels, id_type)  # type: ignore[arg-type]
        loaded.extra["owner"] = index
        return loaded

    def _apply_knobs(self, index: Any) -> None:
        faiss = _faiss()

        space = faiss.ParameterSpace()
        for knob, value in (("efSearch", self.config.ef_search), ("nprobe", self.config.nprobe)):
            if value is None:
                continue
            try:
                space.set_index_parameter(index, knob, value)
            except RuntimeError as exc:
                raise TargetError(
                    self.name,
                    f"{knob} does not apply to this index ({self._kind_chain(index)}); remove "
                    f"{'ef_search' if knob == 'efSearch' else 'nprobe'} from the config",
                ) from exc

    @staticmethod
    def _kind_chain(index: Any) -> str:
        faiss = _faiss()

        names = []
        while index is not None:
            index = faiss.downcast_index(index)
            names.append(type(index).__name__)
            index = getattr(index, "index", None) or getattr(index, "base_index", None)
        return "/".join(names)

    # -- protocol --------------------------------------------------------------------------

    def _metric(self, loaded: _Loaded) -> Metric:
        faiss = _faiss()

        if self.config.metric is not None:
            return self.config.metric
        return "l2" if loaded.index.metric_type == faiss.METRIC_L2 else "ip"

    def _one_metric(self, loaded: _Loaded) -> bool:
        """Live search scores by the index's own metric, exact search by the configured
        one (``l2``, else inner product): True when the two are the same distance."""
        faiss = _faiss()

        own = loaded.index.metric_type
        if self._metric(loaded) == "l2":
            return bool(own == faiss.METRIC_L2)
        return bool(own == faiss.METRIC_INNER_PRODUCT)

    @staticmethod
    def _map_ids(loaded: _Loaded, row: np.ndarray) -> list[str]:
        found = row[row >= 0].tolist()
        if isinstance(loaded.labels, list):  # sidecar: the index returns positions
            return [loaded.labels[i] for i in found]
        return [str(i) for i in found]  # IDMap ids, or positions as ids

    def search(
        self,
        vectors: np.ndarray,
        k: int,
        filter: dict[str, Any] | None = None,
        *,
        texts: Sequence[str] | None = None,
    ) -> SearchResult:
        """Live search, one query at a time (per-query latency), with efSearch/nprobe set."""
        no_filter(self.name, "faiss", filter)
        k = check_k(self.name, k)
        loaded = self._current()
        queries = self.check_queries(vectors, loaded.index.d)
        if self._metric(loaded) == "cosine":
            queries = _unit(queries)
        index = loaded.index
        dist = np.empty((len(queries), k), dtype=np.float32)
        pos = np.empty((len(queries), k), dtype=np.int64)
        latencies: list[float] = []
        with engine_errors(self.name, f"index file {str(self.config.path)!r}"):
            for row, query in enumerate(queries):  # timed one by one: what a caller sees
                start = time.perf_counter()
                dist[row], pos[row] = index.search(query[None, :], k)
                latencies.append(time.perf_counter() - start)
        ids, scores = self._results(loaded, dist, pos)
        return SearchResult(ids, scores, latencies, exact=False)

    @classmethod
    def _results(cls, loaded: _Loaded, dist: np.ndarray,
                 pos: np.ndarray) -> tuple[list[list[str]], list[list[float]]]:
        """Ids and scores of every query at once (-1: fewer than k results)."""
        if len(pos) == 0 or not (pos >= 0).all():
            keep = pos >= 0
            return ([cls._map_ids(loaded, row) for row in pos],
                    [d[m].tolist() for d, m in zip(dist, keep, strict=True)])
        flat = pos.ravel().tolist()
        labels = loaded.labels
        names = [labels[i] for i in flat] if isinstance(labels, list) else list(map(str, flat))
        width = pos.shape[1]
        return ([names[a:a + width] for a in range(0, len(names), width)],
                dist.astype(float).tolist())

    def exact_search(
        self,
        vectors: np.ndarray,
        k: int,
        filter: dict[str, Any] | None = None,
        *,
        texts: Sequence[str] | None = None,
        budget: float | None = None,
    ) -> SearchResult:
        """One pass over every stored vector (decoded for quantised indexes; the reference
        originals when configured), a block of at most ``exact_memory`` at a time."""
        no_filter(self.name, "faiss", filter)
        k = check_k(self.name, k)
        loaded = self._current()
        queries = self.check_queries(vectors, loaded.index.d)
        metric = self._metric(loaded)
        inner, labels = loaded.inner, loaded.labels
        rows = rows_within(self.config.exact_memory, loaded.index.d)
        with engine_errors(self.name, f"index file {str(self.config.path)!r}"):
            if self.config.ground_truth is not None:
                blocks = _faiss_exact.reference_blocks(
                    self.name, self.config.ground_truth.vectors, int(loaded.index.ntotal),
                    int(loaded.index.d), labels, rows)
            else:
                blocks = _faiss_exact.blocks(self.name, inner, labels, rows)
            # cosine: the index compares by inner product over the vectors it stores
            return stream_exact(
                self.name, _unit(queries) if metric == "cosine" else queries, k,
                "l2" if metric == "l2" else "ip", blocks, total=int(loaded.index.ntotal),
                budget=budget)

    @staticmethod
    def _reconstruct(inner: Any, positions: np.ndarray) -> np.ndarray:
        faiss = _faiss()

        try:
            ivf = faiss.extract_index_ivf(inner)
        except RuntimeError:
            ivf = None  # not an IVF index: reconstruct works without a direct map
        if ivf is not None and ivf.direct_map.type == faiss.DirectMap.NoMap:
            ivf.make_direct_map()  # once per loaded file, not once per fetch
        if len(positions) == 0:
            return np.zeros((0, inner.d), dtype=np.float32)
        vectors: np.ndarray
        if len(positions) == inner.ntotal:
            vectors = inner.reconstruct_n(0, inner.ntotal)
        else:
            vectors = inner.reconstruct_batch(positions.astype(np.int64))
        return vectors

    def fetch(self, ids: list[str]) -> Vectors:
        """Stored vectors by id (decoded codes for quantized indexes)."""
        loaded = self._current()
        lookup = self._positions(loaded)
        found = [i for i in ids if i in lookup]
        missing = [i for i in ids if i not in lookup]
        _faiss_exact.check_decodable(self.name, loaded.inner)
        with engine_errors(self.name, f"index file {str(self.config.path)!r}"):
            positions = np.array([lookup[i] for i in found], dtype=np.int64)
            vectors = self._reconstruct(loaded.inner, positions) if found else np.zeros(
                (0, loaded.index.d), dtype=np.float32)
        return Vectors(found, np.asarray(vectors, dtype=np.float32), missing)

    def _positions(self, loaded: _Loaded) -> dict[str, int]:
        if loaded.positions is None:
            n = loaded.index.ntotal
            labels = loaded.labels if loaded.labels is not None else np.arange(n)
            loaded.positions = {str(label): pos for pos, label in enumerate(
                labels.tolist() if isinstance(labels, np.ndarray) else labels)}
        return loaded.positions

    def sample(self, n: int, seed: int) -> Vectors:
        loaded = self._current()
        if loaded.sorted_ids is None:  # sorting a million ids per run cost ~0.1 s
            loaded.sorted_ids = sorted(self._positions(loaded), key=str)
        return self.fetch(choose(loaded.sorted_ids, n, seed, ordered=True))

    def count(self) -> int:
        return int(self._current().index.ntotal)

    def describe(self) -> Description:
        faiss = _faiss()

        loaded = self._current()
        index = loaded.index
        params: dict[str, Any] = {"index": self._kind_chain(index),
                                  "file_mtime_ns": loaded.version[0][0]}
        ivf = _try(lambda: faiss.extract_index_ivf(index))
        if ivf is not None:
            params.update(nlist=ivf.nlist, nprobe=ivf.nprobe)
        hnsw = getattr(loaded.inner, "hnsw", None)
        if hnsw is not None:
            params.update(efSearch=hnsw.efSearch, efConstruction=hnsw.efConstruction,
                          M=(hnsw.nb_neighbors(1)))
        pq = getattr(loaded.inner, "pq", None)
        if pq is not None:
            params.update(pq_m=pq.M, pq_nbits=pq.nbits)
        truth = ("reference" if self.config.ground_truth is not None
                 else _faiss_exact.ground_truth_of(loaded.inner))
        return Description("faiss", faiss.__version__, int(index.d), self._metric(loaded),
                           int(index.ntotal), loaded.id_type, params, ground_truth_of=truth,
                           scores_are_distances=truth == "stored" and self._one_metric(loaded))

    def close(self) -> None:
        self._loaded = None


def _faiss() -> Any:
    """The faiss module, imported on first use and typed loosely: the stubs faiss-cpu ships
    (SWIG-generated) lack most of the API used here (PyCallbackIOReader, DirectMap,
    IndexIDMap.index, ...)."""
    import faiss

    return faiss


def _unit(queries: np.ndarray) -> np.ndarray:
    from ragmon.monitor.targets._helpers import normalised

    return normalised(queries)


def _try(fn: Any) -> Any:
    try:
        return fn()
    except RuntimeError:
        return None
