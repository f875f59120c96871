"""BEIR folders and TREC qrels files, read into :class:`GoldenQuery` lists.

BEIR: ``<folder>/queries.jsonl`` (``{"_id": ..., "text": ...}`` per line) and
``<folder>/qrels/<split>.tsv`` (``query-id<TAB>corpus-id<TAB>score``, header optional).
TREC: a qrels file (``qid iteration docid grade``, whitespace-separated) plus a queries
file: TSV (``qid<TAB>text``) or JSONL (``{"_id" or "id": ..., "text": ...}``).
Only queries that have judgments are loaded; a judged query without text is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ragmon.monitor.errors import GoldenSetError
from ragmon.probes.recall.golden import (
    GoldenQuery,
    check_relevant,
    doc_id,
    json_line,
    read_lines,
    unique,
)


def _number(text: str, doc: str, source: str, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise GoldenSetError(
            source, line, f"grade of document {doc!r} is {text!r}, not a number"
        ) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise GoldenSetError(source, line, f"grade of document {doc!r} is {text!r}, not a number")
    return value


def read_query_texts(path: Path) -> dict[str, tuple[str, int]]:
    """Query id -> (text, line) from a JSONL or TSV queries file; duplicates are errors."""
    source = str(path)
    out: dict[str, tuple[str, int]] = {}
    jsonl = path.suffix in (".jsonl", ".json")
    for number, raw in enumerate(read_lines(path), start=1):
        if not raw.strip():
            continue
        if jsonl:
            row: Any = json_line(raw, source, number)
            if not isinstance(row, dict):
                raise GoldenSetError(source, number, "each line must be a JSON object")
            qid_raw, text = row.get("_id", row.get("id")), row.get("text")
            if qid_raw is None:
                raise GoldenSetError(source, number, "missing '_id'")
        else:
            qid_raw, _, text = raw.partition("\t")
        qid = doc_id(qid_raw, source, number, "query id")
        if not isinstance(text, str) or not text.strip():
            raise GoldenSetError(source, number, f"query {qid!r} has no text")
        if qid in out:
            raise GoldenSetError(
                source, number, f"duplicate query id {qid!r} (first on line {out[qid][1]})"
            )
        out[qid] = (text.strip(), number)
    return out


def _judgments(
    path: Path, split_line: Any
) -> tuple[dict[str, dict[str, float]], dict[str, int]]:
    """(query id -> {doc id: grade}, query id -> line of its first judgment)."""
    source = str(path)
    qrels: dict[str, dict[str, float]] = {}
    first: dict[str, int] = {}
    for number, raw in enumerate(read_lines(path), start=1):
        if not raw.strip():
            continue
        parts = split_line(raw, number)
        if parts is None:
            continue
        qid_text, doc_text, grade_text = parts
        qid = doc_id(qid_text, source, number, "query id")
        doc = doc_id(doc_text, source, number)
        value = _number(grade_text, doc, source, number)
        judged = qrels.setdefault(qid, {})
        first.setdefault(qid, number)
        if doc in judged:
            raise GoldenSetError(
                source, number, f"document {doc!r} is judged twice for query {qid!r}"
            )
        judged[doc] = value
    return qrels, first


def _build(
    qrels: dict[str, dict[str, float]], first: dict[str, int],
    texts: dict[str, tuple[str, int]], qrels_source: str, queries_source: str,
) -> list[GoldenQuery]:
    queries = []
    for qid, judged in qrels.items():
        check_relevant(qid, judged, qrels_source, first[qid])
        if qid not in texts:
            raise GoldenSetError(
                qrels_source, first[qid],
                f"query {qid!r} is judged but has no text in {queries_source}",
            )
        text, line = texts[qid]
        queries.append(GoldenQuery(qid, judged, text=text, line=line))
    if not queries:
        raise GoldenSetError(qrels_source, None, "no judgments found")
    return unique(queries, queries_source)


def load_beir(folder: Path, split: str) -> list[GoldenQuery]:
    queries_path = folder / "queries.jsonl"
    qrels_path = folder / "qrels" / f"{split}.tsv"
    for needed in (queries_path, qrels_path):
        if not needed.is_file():
            raise GoldenSetError(
                str(needed), None, f"not found; a BEIR folder holds queries.jsonl and "
                f"qrels/{split}.tsv (split {split!r})",
            )
    source = str(qrels_path)

    def split_line(raw: str, number: int) -> tuple[str, str, str] | None:
        parts = raw.rstrip("\n").split("\t")
        if len(parts) != 3:
            raise GoldenSetError(
                source, number, f"expected 3 tab-separated columns, found {len(parts)}"
            )
        if number == 1 and parts[2].strip().lower() == "score":
            return None  # the header
        return parts[0].strip(), parts[1].strip(), parts[2].strip()

    qrels, first = _judgments(qrels_path, split_line)
    texts = read_query_texts(queries_path)
    return _build(qrels, first, texts, source, str(queries_path))


def load_trec(qrels_path: Path, queries_path: Path | None) -> list[GoldenQuery]:
    source = str(qrels_path)
    if queries_path is None:
        raise GoldenSetError(
            source, None, "a TREC golden set needs 'queries': a TSV (id<TAB>text) or JSONL file"
        )

    def split_line(raw: str, number: int) -> tuple[str, str, str] | None:
        parts = raw.split()
        if len(parts) != 4:
            raise GoldenSetError(
                source, number, f"expected 'qid iteration docid grade', found {len(parts)} fields"
            )
        return parts[0], parts[2], parts[3]

    qrels, first = _judgments(qrels_path, split_line)
    texts = read_query_texts(Path(queries_path))
    return _build(qrels, first, texts, source, str(queries_path))
