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

Presence of judged documents: a document id is not an index key, so each run remembers in
its per-query rows (``doc_chunks``) which chunks of each document the query judges relevant
its live and exact searches returned. A later run checks those chunks, the baseline's and
its own, like judged chunk ids: a document whose remembered chunks are all gone is missing,
one whose remembered chunk has another stored vector changed. A judged document no search
has returned yet cannot be checked (``docs_unchecked``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ragmon.monitor.targets.abc import VectorTarget
from ragmon.probes.recall.golden import GoldenQuery, GoldenSet
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


def named_documents(relevant: Mapping[str, float], docs: DocumentMap) -> set[str]:
    """The ids a query judges relevant that are documents, not chunks of one."""
    return {d for d, grade in relevant.items() if grade > 0 and docs.of(d) == d}


def doc_chunks(row: Mapping[str, Any], relevant: Mapping[str, float],
               docs: DocumentMap) -> dict[str, list[str]]:
    """Of each document ``relevant`` names, the chunks the row's searches returned."""
    named = named_documents(relevant, docs)
    found: dict[str, set[str]] = {}
    for side in row.get("chunks", {}).values():
        for chunk in side.get("ids", []):
            doc = docs.of(chunk)
            if doc in named and doc != chunk:
                found.setdefault(doc, set()).add(chunk)
    return {d: sorted(c) for d, c in sorted(found.items())}


def presence_set(
    golden: GoldenSet, chunks: GoldenSet, docs: DocumentMap, rows: Mapping[str, Any],
    baseline_rows: Mapping[str, Any] | None,
) -> tuple[GoldenSet, dict[str, set[str]]]:
    """The golden set whose ids presence and vectors are checked on: the judged chunk ids
    (``chunks``) plus the remembered chunks of each judged document, this run's and the
    baseline's; and those chunks by document."""
    remembered: dict[str, set[str]] = {}
    queries = []
    for q, cq in zip(golden.queries, chunks.queries, strict=True):
        named = named_documents(q.relevant, docs)
        relevant = dict(cq.relevant)
        for source in (rows.get(q.id), (baseline_rows or {}).get(q.id)):
            for doc, ids in ((source or {}).get("doc_chunks") or {}).items():
                if doc in named:
                    remembered.setdefault(doc, set()).update(ids)
                    relevant.update(dict.fromkeys(ids, 1.0))
        queries.append(GoldenQuery(q.id, relevant, q.text, q.vector, q.filter, q.tags, q.line))
    return GoldenSet(golden.name, golden.source, queries, golden.version), remembered


def lift_presence(causes: dict[str, Any], golden: GoldenSet, chunks: GoldenSet,
                  docs: DocumentMap, remembered: Mapping[str, set[str]]) -> None:
    """Presence counted by what the golden set judges: its judged chunk ids, and its judged
    documents (missing when every remembered chunk is); ``chunk_docs`` maps each remembered
    chunk to its document, so changed vectors are counted by document too."""
    judged = chunks.doc_ids()
    named = set().union(*(named_documents(q.relevant, docs) for q in golden.queries))
    causes["docs_total"] = len(judged) + len(remembered)
    causes["docs_unchecked"] = len(named - set(remembered))
    causes["chunk_docs"] = {c: d for d, ids in remembered.items() for c in ids}
    if "docs_missing" not in causes:
        return
    gone = set(causes["docs_missing"])
    missing = [c for c in judged if c in gone]
    missing += [d for d, ids in remembered.items() if ids and ids <= gone]
    causes["docs_missing"] = sorted(missing)
