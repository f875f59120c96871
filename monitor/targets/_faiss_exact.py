"""The vectors a FAISS index compares against, read block by block for one exact pass.

- Flat storage (``Flat``, ``HNSWxx`` over a flat store): slices of the stored array, read
  in place, no copy.
- IVF indexes (``IVF..,Flat``, ``IVF..,PQ..``, ``IVF..,SQ..``): each inverted list's codes
  decoded with ``sa_decode`` (the list number followed by the stored code is the index's
  standalone code), lists gathered into blocks; ids come from the lists.
- Anything else (``PQ``, ``SQ``, ``HNSW`` over a quantised store, a pre-transform chain):
  ``reconstruct_n`` over consecutive positions.
- Fast-scan indexes (``..x4fs``) pack their codes in blocks that FAISS 1.15 cannot
  reconstruct from a file (it crashes the process), so they are refused unless
  ``ground_truth.vectors`` gives the original vectors.

Quantised indexes decode to what the index really compares against, so ground truth over
them measures search error only, not quantisation error. A reference file of the original
vectors (``.npy``, or a flat ``.faiss`` index; row i is the i-th vector added) measures
both.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ragmon.monitor.errors import TargetError
from ragmon.monitor.targets.abc import GroundTruthOf

Labels = np.ndarray | list[str] | None
Block = tuple[Any, np.ndarray]


class _Span:
    """Ids of ``count`` consecutive positions from ``start``, looked up lazily."""

    def __init__(self, start: int, count: int, labels: Labels):
        self.start, self.count, self.labels = start, count, labels

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> str:
        pos = self.start + i
        return str(self.labels[pos]) if self.labels is not None else str(pos)

    def take(self, positions: np.ndarray) -> list[str]:
        """The ids at ``positions`` (relative to the span) in one go."""
        absolute = (positions + self.start).tolist()
        if self.labels is None:
            return list(map(str, absolute))
        labels = self.labels
        return [str(labels[p]) for p in absolute]


class _Listed:
    """Ids of a block of decoded inverted-list entries (the lists' own ids)."""

    def __init__(self, ids: np.ndarray, labels: Labels):
        self.ids, self.labels = ids, labels

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> str:
        key = int(self.ids[i])
        return str(self.labels[key]) if self.labels is not None else str(key)


def _faiss() -> Any:
    import faiss

    return faiss


def flat_storage(inner: Any) -> Any:
    """The IndexFlat holding the vectors as stored, or None when they are encoded."""
    faiss = _faiss()
    flat = faiss.downcast_index(getattr(inner, "storage", None) or inner)
    return flat if isinstance(flat, faiss.IndexFlat) else None


def ground_truth_of(inner: Any) -> GroundTruthOf:
    """``stored`` when exact search reads the vectors as added, ``decoded`` otherwise."""
    faiss = _faiss()
    if flat_storage(inner) is not None or isinstance(inner, faiss.IndexIVFFlat):
        return "stored"
    return "decoded"


def check_decodable(target: str, inner: Any) -> None:
    """Refuse what FAISS cannot decode without crashing: fast-scan indexes."""
    if "FastScan" in type(inner).__name__:
        raise TargetError(target, f"a {type(inner).__name__} index keeps its codes packed for "
                          "fast scan, and FAISS cannot decode them from a file; set "
                          "ground_truth.vectors to the original vectors (.npy or a flat "
                          ".faiss) for exact search on this index")


def blocks(target: str, inner: Any, labels: Labels, rows: int) -> Iterator[Block]:
    """Every vector of ``inner`` as (ids, vectors) blocks of at most ``rows`` vectors."""
    check_decodable(target, inner)
    n = int(inner.ntotal)
    flat = flat_storage(inner)
    if flat is not None:
        view = _faiss().rev_swig_ptr(flat.get_xb(), n * flat.d).reshape(n, flat.d)
        for start in range(0, n, rows):
            yield _Span(start, min(rows, n - start), labels), view[start:start + rows]
        return
    ivf = _decodable_ivf(inner)
    if ivf is not None:
        yield from _ivf_blocks(ivf, labels, rows)
        return
    for start in range(0, n, rows):
        count = min(rows, n - start)
        yield _Span(start, count, labels), inner.reconstruct_n(start, count)


def _decodable_ivf(inner: Any) -> Any:
    """``inner`` as an IndexIVF whose list codes ``sa_decode`` reads, or None."""
    faiss = _faiss()
    if not isinstance(inner, faiss.IndexIVF) or "FastScan" in type(inner).__name__:
        return None
    if not isinstance(faiss.downcast_InvertedLists(inner.invlists), faiss.ArrayInvertedLists):
        return None
    for list_no in range(inner.nlist):  # one code decoded: the index supports it
        if inner.invlists.list_size(list_no):
            try:
                inner.sa_decode(_sa_codes(inner, list_no, 1)[:1])
            except RuntimeError:
                return None
            return inner
    return inner


def _sa_codes(ivf: Any, list_no: int, count: int) -> np.ndarray:
    """The first ``count`` codes of list ``list_no`` in standalone form: the list number
    (``coarse_code_size`` bytes, little-endian, as ``encode_listno`` writes it), then the
    stored code."""
    faiss = _faiss()
    size = ivf.invlists.code_size
    codes = faiss.rev_swig_ptr(ivf.invlists.get_codes(list_no), count * size)
    prefix_bytes = ivf.coarse_code_size()
    prefix = np.frombuffer(np.array([list_no], dtype="<u8").tobytes(), np.uint8)[:prefix_bytes]
    out = np.empty((count, prefix_bytes + size), dtype=np.uint8)
    out[:, :prefix_bytes] = prefix
    out[:, prefix_bytes:] = codes.reshape(count, size)
    return out


def _ivf_blocks(ivf: Any, labels: Labels, rows: int) -> Iterator[Block]:
    faiss = _faiss()
    codes: list[np.ndarray] = []
    ids: list[np.ndarray] = []
    held = 0
    for list_no in range(ivf.nlist):
        size = ivf.invlists.list_size(list_no)
        if not size:
            continue
        list_codes = _sa_codes(ivf, list_no, size)
        list_ids = faiss.rev_swig_ptr(ivf.invlists.get_ids(list_no), size).copy()
        for start in range(0, size, rows):  # a list larger than a block is split
            part = slice(start, start + rows)
            codes.append(list_codes[part])
            ids.append(list_ids[part])
            held += len(ids[-1])
            if held >= rows:
                yield _decoded(ivf, codes, ids, labels)
                codes, ids, held = [], [], 0
    if held:
        yield _decoded(ivf, codes, ids, labels)


def _decoded(ivf: Any, codes: list[np.ndarray], ids: list[np.ndarray], labels: Labels) -> Block:
    return _Listed(np.concatenate(ids), labels), ivf.sa_decode(np.vstack(codes))


def reference_blocks(target: str, path: Path, ntotal: int, dimension: int, labels: Labels,
                     rows: int) -> Iterator[Block]:
    """The original vectors from ``path`` (row i: the index's i-th vector), in blocks."""
    view, owner = _reference(target, path)
    if view.shape != (ntotal, dimension):
        raise TargetError(target, f"ground_truth.vectors {str(path)!r} holds "
                          f"{view.shape[0]} x {view.shape[1]} vectors but the index holds "
                          f"{ntotal} x {dimension}; write the originals of this index, row i "
                          "being the i-th vector added")
    for start in range(0, ntotal, rows):
        block = np.asarray(view[start:start + rows], dtype=np.float32)
        yield _Span(start, len(block), labels), block
    del owner


def _reference(target: str, path: Path) -> tuple[np.ndarray, Any]:
    faiss = _faiss()
    try:
        if path.suffix == ".npy":
            array = np.load(path, mmap_mode="r")
            if array.ndim != 2:
                raise TargetError(target, f"ground_truth.vectors {str(path)!r} is not a 2-D "
                                  f"array (shape {array.shape}); save an (n, dimension) array")
            return array, None
        owner = faiss.read_index(str(path), faiss.IO_FLAG_MMAP)
        index = faiss.downcast_index(owner)  # a view: ``owner`` keeps the C++ object alive
    except FileNotFoundError as exc:
        raise TargetError(target, f"ground_truth.vectors {str(path)!r} does not exist") from exc
    except (RuntimeError, ValueError, OSError) as exc:
        raise TargetError(target, f"ground_truth.vectors {str(path)!r} cannot be read "
                          f"({type(exc).__name__}); give a .npy array or a flat .faiss "
                          "index") from exc
    if not isinstance(index, faiss.IndexFlat):
        raise TargetError(target, f"ground_truth.vectors {str(path)!r} is a "
                          f"{type(index).__name__}, not a flat index; write the original "
                          "vectors with IndexFlat, or as .npy")
    n = int(index.ntotal)
    return faiss.rev_swig_ptr(index.get_xb(), n * index.d).reshape(n, index.d), owner
