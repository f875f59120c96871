"""The demo's golden set in BEIR form: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/test.tsv``.

BEIR is how retrieval benchmarks are shared, so other tools (and ragmon's own BEIR loader,
:func:`ragmon.probes.recall._formats.load_beir`) can read the demo's judgments. The golden
set judges documents (``json.dumps``) while the index holds their chunks (``json.dumps#0``),
so the exported corpus has one entry per document of the standard-library corpus: its
chunks' text in chunk order, and the document id as its title. Every judged document is
in the exported corpus; an unknown one is an error naming the query.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

from ragmon.monitor.demo.corpus import Chunk, stdlib_corpus
from ragmon.monitor.errors import GoldenSetError

#: The qrels split the export writes (``qrels/<split>.tsv``).
SPLIT = "test"


def demo_golden_path() -> Path:
    """The golden set shipped with the demo (``monitor/demo/golden.jsonl``)."""
    return Path(str(files("ragmon.monitor.demo") / "golden.jsonl"))


def document_of(chunk_id: str, separator: str = "#") -> str:
    """The document a chunk belongs to: the part before the last separator."""
    head, sep, _ = chunk_id.rpartition(separator)
    return head if sep and head else chunk_id


def documents(chunks: Sequence[Chunk], separator: str = "#") -> dict[str, str]:
    """Document id -> text: the document's chunks in their order, joined by a blank line.

    A chunk's text starts with ``<document id>: ``; that prefix is kept once, on the first
    chunk, so each document reads as one text."""
    texts: dict[str, list[str]] = {}
    for chunk in chunks:
        doc = document_of(chunk.id, separator)
        body = chunk.text
        prefix = f"{doc}: "
        if doc in texts and body.startswith(prefix):
            body = body[len(prefix):]
        texts.setdefault(doc, []).append(body)
    return {doc: "\n\n".join(parts) for doc, parts in texts.items()}


def read_golden(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line, query) of a ragmon JSONL golden set (blank and ``//`` lines skipped). The full
    validation is the recall probe's; this reads what the export needs and names the line
    of anything else."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise GoldenSetError(str(path), number, f"invalid JSON: {exc.msg}") from None
        if not (isinstance(row, dict) and isinstance(row.get("query"), str)
                and isinstance(row.get("relevant"), dict) and "id" in row):
            raise GoldenSetError(str(path), number, "a demo golden query needs 'id', "
                                 "'query' (text) and 'relevant' ({document: grade})")
        rows.append((number, row))
    return rows


def _grade(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _write(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(tmp, path)


def export_beir(out_dir: Path, golden: Path | None = None,
                chunks: Sequence[Chunk] | None = None, separator: str = "#") -> Path:
    """Write ``golden`` (ragmon JSONL, default: the demo's) as a BEIR folder in ``out_dir``.

    ``corpus.jsonl`` holds every document of ``chunks`` (default: the demo corpus),
    ``queries.jsonl`` every query with its tags in ``metadata``, and ``qrels/test.tsv`` the
    graded judgments (with the usual header line). Returns ``out_dir``. Files are written
    under temporary names and renamed, so an interrupted export leaves no half file.
    """
    golden = golden or demo_golden_path()
    queries = read_golden(golden)
    docs = documents(stdlib_corpus() if chunks is None else chunks, separator)
    for line, q in queries:
        unknown = sorted(str(d) for d in q["relevant"] if d not in docs)
        if unknown:
            raise GoldenSetError(
                str(golden), line,
                f"query {q['id']!r} judges {unknown[0]!r}, which is not a document of the "
                "corpus; fix the judgment, or export with the corpus it was judged on")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "qrels").mkdir(exist_ok=True)
    _write(out_dir / "corpus.jsonl", [
        json.dumps({"_id": doc, "title": doc, "text": text}, ensure_ascii=False)
        for doc, text in docs.items()])
    _write(out_dir / "queries.jsonl", [
        json.dumps({"_id": str(q["id"]), "text": q["query"],
                    "metadata": {"tags": list(q.get("tags", []))}}, ensure_ascii=False)
        for _, q in queries])
    qrels = ["query-id\tcorpus-id\tscore"]
    qrels += [f"{q['id']}\t{doc}\t{_grade(grade)}"
              for _, q in queries for doc, grade in sorted(q["relevant"].items())]
    _write(out_dir / "qrels" / f"{SPLIT}.tsv", qrels)
    return out_dir
