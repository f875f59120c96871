"""Documents over chunk indexes: which document a chunk belongs to, and the document ranking.

Teams judge relevance per document (a page, a file), while the index holds its chunks
(``page#0``, ``page#1``, ...). With ``documents`` set on a recall probe, a chunk id maps to a
document id in one of three ways (see :class:`~ragmon.probes.recall.config.DocumentsConfig`):

- ``pattern``: a regular expression with a named group ``doc``, matched in full against the
  chunk id (``(?P<doc>.+)#\\d+``); a chunk id that does not match is its own document;
- ``separator``: the document id is the part before the *last* separator (``page#3`` ->
  ``page`` for ``#``); an id without the separator is its own document;
- ``field``: a metadata field the store keeps beside each chunk (a pgvector column, a Qdrant
  payload key, a Chroma or LanceDB metadata key), read through
  :meth:`VectorTarget.document_ids`; a chunk without the field is its own document.

Judgments are lifted to documents: a judged chunk id counts for its document, whose grade is
the highest grade judged for it or any of its chunks (a golden set may name documents,
chunks, or both). A retrieved chunk list is collapsed by MaxP, the convention of
passage-based document ranking: a document ranks at its best chunk, and the ranking of the
documents follows the same tie rule as chunks (equal best scores: document id descending).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ragmon.monitor.targets.abc import VectorTarget
from ragmon.probes.recall.metrics import break_ties


class DocumentMap:
    """The chunk -> document mapping of one probe (field values are looked up once per id)."""

    def __init__(self, config: Any):
        self.config = config
        self._pattern = re.compile(config.pattern) if config.pattern is not None else None
        self._known: dict[str, str] = {}

    @property
    def field(self) -> str | None:
        """The metadata field read from the target, or None for an id-only mapping."""
        field: str | None = self.config.field
        return field

    def describe(self) -> str:
        if self._pattern is not None:
            return f"pattern {self._pattern.pattern!r}"
        if self.config.separator is not None:
            return f"separator {self.config.separator!r}"
        return f"field {self.field!r}"

    def of(self, chunk: str) -> str:
        """The document of ``chunk`` (for a field mapping: after :meth:`resolve`)."""
        if self._pattern is not None:
            match = self._pattern.fullmatch(chunk)
            return match.group("doc") if match and match.group("doc") else chunk
        if self.config.separator is not None:
            head, sep, _ = chunk.rpartition(self.config.separator)
            return head if sep and head else chunk
        return self._known.get(chunk, chunk)

    def resolve(self, target: VectorTarget, chunks: Iterable[str]) -> None:
        """Read the metadata field of the chunks not seen yet (nothing for id mappings)."""
        if self.field is None:
            return
        new = sorted({c for c in chunks if c not in self._known})
        if not new:
            return
        found = target.document_ids(new, self.field)
        self._known.update({c: str(found.get(c, c)) for c in new})

    def lift(self, relevant: Mapping[str, float]) -> dict[str, float]:
        """Judgments by document: each document's highest grade over itself and its chunks."""
        out: dict[str, float] = {}
        for judged, grade in relevant.items():
            doc = self.of(judged)
            out[doc] = max(out.get(doc, grade), grade)
        return out

    def judged_chunks(self, relevant: Mapping[str, float]) -> dict[str, float]:
        """The judgments that name chunks (ids the mapping sends to another document)."""
        return {c: g for c, g in relevant.items() if self.of(c) != c}

    def distinct(self, chunks: Sequence[str]) -> int:
        return len({self.of(c) for c in chunks})


def collapse(
    chunks: Sequence[str], scores: Sequence[float] | None, doc_of: Any
) -> list[str]:
    """Documents in rank order (MaxP): each at the rank of its best chunk.

    ``chunks`` are in the engine's order (best first) with their ``scores``; a document's
    score is that of its first (best) chunk, and documents with equal scores are ordered by
    id, descending, as chunks are (:func:`~ragmon.probes.recall.metrics.break_ties`).
    """
    docs: list[str] = []
    best: list[float] = []
    seen: set[str] = set()
    aligned = scores is not None and len(scores) == len(chunks)
    for i, chunk in enumerate(chunks):
        doc = doc_of(chunk)
        if doc in seen:
            continue
        seen.add(doc)
        docs.append(doc)
        if aligned and scores is not None:
            best.append(scores[i])
    return break_ties(docs, best if aligned else None)
