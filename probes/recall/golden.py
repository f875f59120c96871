"""Golden sets: queries with judged relevant document ids (graded), in three formats.

ragmon JSONL, one query per line::

    {"id": "q1", "query": "How do I pretty-print JSON?",
     "relevant": {"json.dumps#0": 2, "json.JSONEncoder#0": 1},
     "filter": {"topic": "json"}, "tags": ["json"]}

``query`` (text) or ``vector`` (a precomputed embedding) is required; ``relevant`` is a
mapping id -> grade (a number; > 0 means relevant, 0 judged non-relevant) or a list of ids
(grade 1 each). Ids are strings or integers. BEIR folders (``queries.jsonl`` +
``qrels/<split>.tsv``) and TREC qrels (``qid iter docid grade`` plus a queries file) load
into the same model (see :mod:`probes.recall._formats`).

Every error is a :class:`GoldenSetError` naming the file and line. A golden set's
``version`` is a hash of its parsed content, so reformatting a file keeps the version and
editing a query or a judgment changes it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ragmon.monitor.errors import GoldenSetError

FIELDS = ("id", "query", "vector", "relevant", "filter", "tags")
_INT_ID = re.compile(r"-?\d+")


def judgments(relevant: dict[str, float], mapping: str | None = None) -> str:
    """Digest of a query's judgments (and of the document mapping: runs judged at another
    level are never paired with each other)."""
    items: list[Any] = sorted(relevant.items())
    if mapping is not None:
        items.append(["documents", mapping])
    blob = json.dumps(items, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class GoldenQuery:
    id: str
    relevant: dict[str, float]
    text: str | None = None
    vector: list[float] | None = None
    filter: dict[str, Any] | None = None
    tags: tuple[str, ...] = ()
    line: int | None = None

    def content(self) -> dict[str, Any]:
        """The query as plain JSON (what the version hashes and the store keeps)."""
        return {
            "id": self.id, "query": self.text, "vector": self.vector,
            "relevant": dict(sorted(self.relevant.items())), "filter": self.filter,
            "tags": list(self.tags),
        }


@dataclass
class GoldenSet:
    name: str
    source: str
    queries: list[GoldenQuery]
    version: str = field(default="")
    #: :meth:`judgment_digests` by document mapping, kept with the parsed set.
    _digests: dict[str | None, tuple[str, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False)
    _given: tuple[list[int], np.ndarray] | None = field(
        default=None, init=False, repr=False, compare=False)
    _doc_ids: list[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.version:
            self.version = content_version(self.queries)

    def judgment_digests(self, mapping: str | None = None) -> tuple[str, ...]:
        """:func:`judgments` of each query, computed once per mapping for this set."""
        if mapping not in self._digests:
            self._digests.clear()  # one mapping at a time: a changed one replaces the old
            self._digests[mapping] = tuple(judgments(q.relevant, mapping) for q in self.queries)
        return self._digests[mapping]

    def given_vectors(self) -> tuple[list[int], np.ndarray]:
        """The positions of the queries given as vectors and those vectors as one float32
        matrix (read-only), built once for this set (the caller has checked their
        dimensions agree)."""
        if self._given is None:
            rows = [i for i, q in enumerate(self.queries) if q.vector is not None]
            matrix = np.array([self.queries[i].vector for i in rows], dtype=np.float32)
            matrix.flags.writeable = False  # shared by every run of this set
            self._given = (rows, matrix)
        return self._given

    def doc_ids(self) -> list[str]:
        """Every relevant (grade > 0) document id, sorted, once (computed once per set)."""
        if self._doc_ids is None:
            self._doc_ids = sorted({d for q in self.queries for d, g in q.relevant.items()
                                    if g > 0})
        return list(self._doc_ids)

    def to_json(self) -> list[dict[str, Any]]:
        return [q.content() for q in self.queries]

    @classmethod
    def from_json(cls, name: str, source: str, rows: list[dict[str, Any]]) -> GoldenSet:
        queries = [
            GoldenQuery(
                id=r["id"], relevant=dict(r["relevant"]), text=r.get("query"),
                vector=r.get("vector"), filter=r.get("filter"), tags=tuple(r.get("tags", ())),
            )
            for r in rows
        ]
        return cls(name, source, queries)


def content_version(queries: list[GoldenQuery]) -> str:
    """Hash of the parsed content; vectors enter as a digest of their float64 bytes, which
    keeps hashing a set of a thousand 384-d vectors cheap."""
    rows = []
    for q in sorted(queries, key=lambda q: q.id):
        row = q.content()
        if row["vector"] is not None:
            raw = np.asarray(row["vector"], dtype=np.float64).tobytes()
            row["vector"] = hashlib.sha256(raw).hexdigest()
        rows.append(row)
    blob = json.dumps(rows, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def doc_id(value: Any, source: str, line: int | None, what: str = "document id") -> str:
    """A document or query id as a string; anything but a non-empty string or int is refused."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise GoldenSetError(
            source, line,
            f"{what} {value!r} has an unknown id format ({type(value).__name__}); "
            "ids are strings or integers",
        )
    text = str(value)
    if not text.strip() or text != text.strip() or "\n" in text or "\t" in text:
        raise GoldenSetError(
            source, line, f"{what} {text!r} has an unknown id format (empty or whitespace)"
        )
    return text


def grade(value: Any, doc: str, source: str, line: int | None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise GoldenSetError(
            source, line, f"grade of document {doc!r} is {value!r}, not a number"
        )
    return float(value)


def check_relevant(qid: str, relevant: dict[str, float], source: str, line: int | None) -> None:
    if not relevant:
        raise GoldenSetError(source, line, f"query {qid!r} has no judged documents")
    if not any(g > 0 for g in relevant.values()):
        raise GoldenSetError(
            source, line,
            f"query {qid!r} has no relevant document (every grade is <= 0); recall is undefined",
        )


def _relevant(raw: Any, qid: str, source: str, line: int) -> dict[str, float]:
    if isinstance(raw, list):
        for item in raw:
            doc_id(item, source, line)
        raw = dict.fromkeys(raw, 1)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise GoldenSetError(
            source, line, f"'relevant' of query {qid!r} must be a mapping id -> grade or a list"
        )
    out = {doc_id(d, source, line): grade(g, str(d), source, line) for d, g in raw.items()}
    check_relevant(qid, out, source, line)
    return out


def _vector(raw: Any, qid: str, source: str, line: int) -> list[float] | None:
    if raw is None:
        return None
    arr = None
    if isinstance(raw, list) and raw and not any(isinstance(x, bool) for x in raw):
        try:
            arr = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError):
            arr = None
    if arr is None or arr.ndim != 1 or not np.isfinite(arr).all():
        raise GoldenSetError(
            source, line, f"'vector' of query {qid!r} must be a non-empty list of finite numbers"
        )
    vector: list[float] = arr.tolist()  # 1-D float64: a list of floats
    return vector


def parse_query(row: Any, source: str, line: int) -> GoldenQuery:
    """One ragmon JSONL object -> GoldenQuery (every problem named with file:line)."""
    if not isinstance(row, dict):
        raise GoldenSetError(source, line, "each line must be a JSON object")
    unknown = sorted(set(row) - set(FIELDS))
    if unknown:
        raise GoldenSetError(
            source, line, f"unknown field {unknown[0]!r}; valid fields: {', '.join(FIELDS)}"
        )
    if "id" not in row:
        raise GoldenSetError(source, line, "missing 'id'")
    qid = doc_id(row["id"], source, line, "query id")
    text = row.get("query")
    if text is not None and (not isinstance(text, str) or not text.strip()):
        raise GoldenSetError(source, line, f"'query' of query {qid!r} must be non-empty text")
    vector = _vector(row.get("vector"), qid, source, line)
    if text is None and vector is None:
        raise GoldenSetError(source, line, f"query {qid!r} needs 'query' (text) or 'vector'")
    filt = row.get("filter")
    if filt is not None and not isinstance(filt, dict):
        raise GoldenSetError(source, line, f"'filter' of query {qid!r} must be an object")
    tags = row.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise GoldenSetError(source, line, f"'tags' of query {qid!r} must be a list of strings")
    relevant = _relevant(row.get("relevant"), qid, source, line)
    return GoldenQuery(qid, relevant, text, vector, filt, tuple(tags), line)


def read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise GoldenSetError(str(path), None, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise GoldenSetError(str(path), None, f"cannot be read: {reason}") from None


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # JSON itself keeps the last of two equal keys; a judgment given twice is a mistake.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def json_line(text: str, source: str, line: int) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise GoldenSetError(source, line, f"key {exc.args[0]!r} appears twice") from None
    except json.JSONDecodeError as exc:
        raise GoldenSetError(
            source, line, f"invalid JSON: {exc.msg} (column {exc.colno})"
        ) from None


def unique(queries: list[GoldenQuery], source: str) -> list[GoldenQuery]:
    first: dict[str, int | None] = {}
    for q in queries:
        if q.id in first:
            raise GoldenSetError(
                source, q.line, f"duplicate query id {q.id!r} (first on line {first[q.id]})"
            )
        first[q.id] = q.line
    if not queries:
        raise GoldenSetError(source, None, "the golden set has no queries")
    return queries


def load_ragmon(path: Path) -> list[GoldenQuery]:
    source = str(path)
    queries = []
    for number, text in enumerate(read_lines(path), start=1):
        if not text.strip() or text.lstrip().startswith("//"):
            continue
        queries.append(parse_query(json_line(text, source, number), source, number))
    return unique(queries, source)


def load_golden_set(name: str, config: Any) -> GoldenSet:
    """Load and validate the golden set ``name`` described by a ``GoldenSetConfig``."""
    from ragmon.probes.recall._formats import load_beir, load_trec

    path = Path(config.path)
    if config.format == "ragmon":
        queries = load_ragmon(path)
    elif config.format == "beir":
        queries = load_beir(path, config.split)
    else:
        queries = load_trec(path, config.queries)
    return GoldenSet(name, str(path), queries)


def check_id_type(golden: GoldenSet, id_type: str, target: str) -> None:
    """Refuse golden document ids that cannot be keys of the target's index."""
    if id_type != "int":
        return
    bad = [d for d in golden.doc_ids() if not _INT_ID.fullmatch(d)]
    if bad:
        raise GoldenSetError(
            golden.source, None,
            f"golden set {golden.name!r} has string document ids (e.g. {bad[0]!r}, "
            f"{len(bad)} in all) but target {target!r} keys its documents by int; use the "
            "index's integer ids in the golden set, or a target that stores string ids",
        )
