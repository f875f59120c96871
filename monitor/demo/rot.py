"""The kinds of rot a knowledge base goes through, injected into the demo's deployment and
reverted: each changes what a real deployment would change (the index file, the query
pipeline's settings, the documents, the questions users send), never ragmon itself.

A marker file is written before a change and removed after its revert; a demo interrupted
in between finds the marker at its next start and restores the healthy index first
(:func:`recover`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragmon.monitor.demo import scenario as files

if TYPE_CHECKING:
    from ragmon.monitor.demo.session import Session

MARKER = "rot.active"
#: The query pipeline's changed truncation (tokens): short questions lose their ends.
TRUNCATION = 8
#: Shares of the judged documents deleted and edited by the content scenario.
DELETED_SHARE, EDITED_SHARE = 0.2, 0.1
#: Query-drift windows of shifted traffic (the alarm needs 2 drifted windows of 3).
SHIFT_WINDOWS = 2


@dataclass(frozen=True)
class Rot:
    """One scenario: what it changes, what ragmon should say, how to undo it."""

    key: str
    title: str
    change: str
    expected: str
    apply: Callable[[Session, Path], None]
    revert: Callable[[Session, Path], None]
    #: The probe whose numbers show it, and the drift windows it needs.
    watch: str = "docs-recall"
    windows: int = 1
    shifted_traffic: bool = False
    #: Probes not run during the change: the query drift probe refuses to compare windows
    #: of two embedding pipelines (a new model is a new reference, not a drift score).
    skip: tuple[str, ...] = ()


def recover(data_dir: Path) -> bool:
    """Undo a change an interrupted demo left behind; True when there was one."""
    marker = data_dir / MARKER
    if not marker.exists():
        return False
    if (data_dir / files.HEALTHY_INDEX).exists():
        restore(data_dir)
    marker.unlink(missing_ok=True)
    return True


def _mark(data_dir: Path, key: str) -> None:
    files.atomic_write(data_dir / MARKER, key.encode())


def _restore_index(session: Session, data_dir: Path) -> None:
    restore(data_dir)


def _pipeline_changed(session: Session, data_dir: Path) -> None:
    _mark(data_dir, "embedding")
    session.override({"RAGMON_EMBEDDERS__MINILM__MAX_SEQ_LENGTH": str(TRUNCATION)})


def _pipeline_restored(session: Session, data_dir: Path) -> None:
    session.restore()
    (data_dir / MARKER).unlink(missing_ok=True)


def _weak_index(session: Session, data_dir: Path) -> None:
    weak_index(data_dir)


def weak_index(data_dir: Path) -> None:
    """The index rebuilt with HNSW efSearch 2 (the graph is the same; the search is not)."""
    import faiss

    _mark(data_dir, "index")
    index = faiss.read_index(str(data_dir / files.HEALTHY_INDEX))
    hnsw: Any = faiss.downcast_index(index)
    hnsw.hnsw.efSearch = 2
    tmp = data_dir / f".{files.INDEX_FILE}.tmp"
    faiss.write_index(index, str(tmp))
    os.replace(tmp, data_dir / files.INDEX_FILE)


def judged_documents(golden: Path, separator: str = "#") -> list[str]:
    docs: set[str] = set()
    for line in golden.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("//"):
            docs.update(str(d).rsplit(separator, 1)[0] for d in json.loads(line)["relevant"])
    return sorted(docs)


def _content_rot(session: Session, data_dir: Path) -> None:
    content_rot(data_dir, session.active.context.embedder("minilm").encode)


def content_rot(data_dir: Path, encode: Callable[[list[str]], Any]) -> dict[str, list[str]]:
    """A share of the judged documents deleted, another share rewritten and re-embedded
    with ``encode``; returns the documents ``deleted`` and ``edited``."""
    import faiss
    import numpy as np

    _mark(data_dir, "content")
    docs = judged_documents(data_dir / files.GOLDEN_FILE)
    rng = np.random.default_rng(17)
    picked = rng.permutation(len(docs))
    n_del, n_edit = round(DELETED_SHARE * len(docs)), round(EDITED_SHARE * len(docs))
    deleted = {docs[i] for i in picked[:n_del]}
    edited = {docs[i] for i in picked[n_del:n_del + n_edit]}
    ids = (data_dir / files.IDS_FILE).read_text(encoding="utf-8").splitlines()
    index = faiss.read_index(str(data_dir / files.HEALTHY_INDEX))
    vectors = index.reconstruct_n(0, index.ntotal)
    doc_of = [i.rsplit("#", 1)[0] for i in ids]
    stale = [n for n, d in enumerate(doc_of) if d in edited]
    if stale:  # an edit replaced each chunk's text with an unrelated paragraph
        from ragmon.monitor.demo.corpus import stdlib_corpus

        texts = [c.text for c in stdlib_corpus()]
        donors = rng.choice(len(texts), size=len(stale), replace=False)
        vectors[stale] = encode([f"{ids[n]}: {texts[d]}" for n, d in
                                 zip(stale, donors, strict=True)])
    keep = [n for n, d in enumerate(doc_of) if d not in deleted]
    kept_ids = [ids[n] for n in keep]
    # The ids file and the index change together: both under temporary names first.
    files.write_index(data_dir / f".{files.INDEX_FILE}.rot", vectors[keep], _Quiet())
    files.atomic_write(data_dir / f".{files.IDS_FILE}.rot",
                       "".join(f"{i}\n" for i in kept_ids).encode())
    os.replace(data_dir / f".{files.IDS_FILE}.rot", data_dir / files.IDS_FILE)
    os.replace(data_dir / f".{files.INDEX_FILE}.rot", data_dir / files.INDEX_FILE)
    files.atomic_write(data_dir / "rot.ids.orig", "".join(f"{i}\n" for i in ids).encode())
    return {"deleted": sorted(deleted), "edited": sorted(edited)}


def _content_restored(session: Session, data_dir: Path) -> None:
    restore(data_dir)


def restore(data_dir: Path) -> None:
    """The healthy index and its ids back in place (after any scenario)."""
    orig = data_dir / "rot.ids.orig"
    if orig.exists():
        os.replace(orig, data_dir / files.IDS_FILE)
    files.copy_atomic(data_dir / files.HEALTHY_INDEX, data_dir / files.INDEX_FILE)
    (data_dir / MARKER).unlink(missing_ok=True)


def _nothing(session: Session, data_dir: Path) -> None:
    return None


class _Quiet:
    """An output that drops what is written (a small rebuild needs no progress display)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None


SCENARIOS: tuple[Rot, ...] = (
    Rot("embedding", "embedding pipeline changed",
        f"query side truncates at {TRUNCATION} tokens; the index keeps the old vectors",
        "embedding", _pipeline_changed, _pipeline_restored, skip=("query-drift",)),
    Rot("index", "index degraded", "HNSW index rebuilt with efSearch 2",
        "index", _weak_index, _restore_index),
    Rot("content", "content rot",
        f"{DELETED_SHARE:.0%} of the judged documents deleted, {EDITED_SHARE:.0%} rewritten "
        "and re-embedded", "content", _content_rot, _content_restored),
    Rot("topics", "query topic shift",
        "user questions move to a topic the docs barely cover", "drift alarm",
        _nothing, _nothing, watch="query-drift", windows=SHIFT_WINDOWS, shifted_traffic=True),
    Rot("none", "no change", "nothing changed", "nothing fires", _nothing, _nothing),
)


def scenarios(keys: list[str] | None = None) -> list[Rot]:
    return [r for r in SCENARIOS if keys is None or r.key in keys]


def as_dict(rot: Rot) -> dict[str, Any]:
    return {"key": rot.key, "title": rot.title, "change": rot.change, "expected": rot.expected}
