"""Golden set loading: the three formats, one pinned message per bad input (file and line),
and content-hash versions."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from ragmon.monitor.errors import GoldenSetError
from ragmon.probes.recall.golden import GoldenSet, check_id_type, load_golden_set

DATA = Path(__file__).parent / "data"


def cfg(path: Path, fmt: str = "ragmon", queries: Path | None = None, split: str = "test"):  # type: ignore[no-untyped-def]
    return SimpleNamespace(path=path, format=fmt, queries=queries, split=split)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_ragmon_jsonl_loads_every_field(tmp_path: Path) -> None:
    path = write(tmp_path, "g.jsonl", "\n".join([
        json.dumps({"id": "q1", "query": "pretty-print JSON", "relevant": {"json.dumps#0": 2,
                    "json#0": 0}, "filter": {"topic": "json"}, "tags": ["json"]}),
        "",
        "// a comment line",
        json.dumps({"id": 7, "vector": [0.1, 0.2], "relevant": [3, "x"]}),
    ]))
    golden = load_golden_set("g", cfg(path))
    q1, q7 = golden.queries
    assert q1.relevant == {"json.dumps#0": 2.0, "json#0": 0.0} and q1.filter == {"topic": "json"}
    assert q1.tags == ("json",) and q1.line == 1
    assert q7.id == "7" and q7.vector == [0.1, 0.2] and q7.relevant == {"3": 1.0, "x": 1.0}
    assert q7.line == 4
    assert golden.doc_ids() == ["3", "json.dumps#0", "x"]


def test_shipped_stdlib_golden_set_is_valid() -> None:
    golden = load_golden_set("stdlib", cfg(DATA / "stdlib_golden.jsonl"))
    assert len(golden.queries) >= 50


@pytest.mark.parametrize(("lines", "message"), [
    (['{"id": "a", "query": "x", "relevant": ["d"]}', '{"id": "a", "query": "y", '
      '"relevant": ["e"]}'], "g.jsonl:2: duplicate query id 'a' (first on line 1)"),
    (['{"id": "a", "query": "x", "relevant": {}}'], "g.jsonl:1: query 'a' has no judged "
     "documents"),
    (['{"id": "a", "query": "x"}'], "g.jsonl:1: query 'a' has no judged documents"),
    (['{"id": "a", "query": "x", "relevant": {"d": 0}}'], "g.jsonl:1: query 'a' has no "
     "relevant document (every grade is <= 0); recall is undefined"),
    (['{"id": "a", "query": "x", "relevant": {"d": "high"}}'], "g.jsonl:1: grade of document "
     "'d' is 'high', not a number"),
    (['{"id": "a", "query": "x", "relevant": {"d": true}}'], "g.jsonl:1: grade of document "
     "'d' is True, not a number"),
    (['{"id": 1.5, "query": "x", "relevant": ["d"]}'], "g.jsonl:1: query id 1.5 has an unknown "
     "id format (float); ids are strings or integers"),
    (['{"id": "a", "query": "x", "relevant": [{"id": "d"}]}'], "g.jsonl:1: document id "
     "{'id': 'd'} has an unknown id format (dict); ids are strings or integers"),
    (['{"id": "a", "query": "x", "relevant": [" d"]}'], "g.jsonl:1: document id ' d' has an "
     "unknown id format (empty or whitespace)"),
    (['{"id": "a", "query": "x", "relevant": ["d"]}', '{"id": "b", "query": "y", '], "g.jsonl:2: "
     "invalid JSON: Expecting property name enclosed in double quotes (column 27)"),
    (['{"id": "a", "text": "x", "relevant": ["d"]}'], "g.jsonl:1: unknown field 'text'; valid "
     "fields: id, query, vector, relevant, filter, tags"),
    (['{"id": "a", "relevant": ["d"]}'], "g.jsonl:1: query 'a' needs 'query' (text) or "
     "'vector'"),
    (['{"id": "a", "query": "x", "relevant": {"d": 1, "d": 2}}'], "g.jsonl:1: key 'd' appears "
     "twice"),
    ([""], "g.jsonl: the golden set has no queries"),
])
def test_ragmon_jsonl_errors_name_file_and_line(
    tmp_path: Path, lines: list[str], message: str
) -> None:
    path = write(tmp_path, "g.jsonl", "\n".join(lines))
    with pytest.raises(GoldenSetError) as err:
        load_golden_set("g", cfg(path))
    assert str(err.value) == f"{tmp_path}/{message}"


def test_missing_and_undecodable_files(tmp_path: Path) -> None:
    with pytest.raises(GoldenSetError, match=r"nope.jsonl: file not found"):
        load_golden_set("g", cfg(tmp_path / "nope.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(GoldenSetError, match=r"bad.jsonl: cannot be read: .*utf-8"):
        load_golden_set("g", cfg(bad))


def beir(tmp_path: Path, qrels: str, queries: str | None = None) -> Path:
    folder = tmp_path / "beir"
    write(folder, "queries.jsonl", queries if queries is not None else "\n".join([
        json.dumps({"_id": "1", "text": "how to sort"}),
        json.dumps({"_id": "2", "text": "parse dates"}),
        json.dumps({"_id": "3", "text": "unjudged query"}),
    ]))
    write(folder, "qrels/test.tsv", qrels)
    return folder


def test_beir_folder_loads_judged_queries_only(tmp_path: Path) -> None:
    folder = beir(tmp_path, "query-id\tcorpus-id\tscore\n1\tdocA\t1\n1\tdocB\t2\n2\t17\t1\n")
    golden = load_golden_set("b", cfg(folder, "beir"))
    assert [(q.id, q.text, q.relevant) for q in golden.queries] == [
        ("1", "how to sort", {"docA": 1.0, "docB": 2.0}), ("2", "parse dates", {"17": 1.0})]


@pytest.mark.parametrize(("qrels", "queries", "message"), [
    ("1\tdocA\tvery\n", None, "beir/qrels/test.tsv:1: grade of document 'docA' is 'very', not "
     "a number"),
    ("1\tdocA\t1\n1\tdocA\t2\n", None, "beir/qrels/test.tsv:2: document 'docA' is judged "
     "twice for query '1'"),
    ("1\tdocA\n", None, "beir/qrels/test.tsv:1: expected 3 tab-separated columns, found 2"),
    ("9\tdocA\t1\n", None, "beir/qrels/test.tsv:1: query '9' is judged but has no text in "
     "{tmp}/beir/queries.jsonl"),
    ("1\tdocA\t0\n", None, "beir/qrels/test.tsv:1: query '1' has no relevant document (every "
     "grade is <= 0); recall is undefined"),
    ("1\tdocA\t1\n", '{"_id": "1", "text": "a"}\n{"_id": "1", "text": "b"}\n',
     "beir/queries.jsonl:2: duplicate query id '1' (first on line 1)"),
])
def test_beir_errors(tmp_path: Path, qrels: str, queries: str | None, message: str) -> None:
    folder = beir(tmp_path, qrels, queries)
    with pytest.raises(GoldenSetError) as err:
        load_golden_set("b", cfg(folder, "beir"))
    assert str(err.value) == f"{tmp_path}/" + message.format(tmp=tmp_path)


def test_beir_missing_split(tmp_path: Path) -> None:
    folder = beir(tmp_path, "1\tdocA\t1\n")
    with pytest.raises(GoldenSetError, match=r"qrels/dev.tsv: not found; a BEIR folder holds "
                       r"queries.jsonl and qrels/dev.tsv \(split 'dev'\)"):
        load_golden_set("b", cfg(folder, "beir", split="dev"))


def test_trec_qrels_with_tsv_queries(tmp_path: Path) -> None:
    qrels = write(tmp_path, "qrels.txt", "101 0 doc1 2\n101 0 doc2 0\n102 Q0 doc9 1\n")
    topics = write(tmp_path, "topics.tsv", "101\tfirst topic\n102\tsecond topic\n")
    golden = load_golden_set("t", cfg(qrels, "trec", topics))
    assert [(q.id, q.relevant) for q in golden.queries] == [
        ("101", {"doc1": 2.0, "doc2": 0.0}), ("102", {"doc9": 1.0})]
    assert golden.doc_ids() == ["doc1", "doc9"]


def test_trec_errors(tmp_path: Path) -> None:
    topics = write(tmp_path, "topics.tsv", "101\tfirst topic\n")
    qrels = write(tmp_path, "qrels.txt", "101 0 doc1 2\n101 doc2 1\n")
    with pytest.raises(GoldenSetError) as err:
        load_golden_set("t", cfg(qrels, "trec", topics))
    assert str(err.value) == f"{qrels}:2: expected 'qid iteration docid grade', found 3 fields"
    with pytest.raises(GoldenSetError, match="a TREC golden set needs 'queries'"):
        load_golden_set("t", cfg(qrels, "trec", None))


def test_version_is_a_content_hash(tmp_path: Path) -> None:
    rows = [{"id": "a", "query": "x", "relevant": {"d1": 1, "d2": 2}},
            {"id": "b", "query": "y", "relevant": ["d3"]}]
    one = write(tmp_path, "one.jsonl", "\n".join(json.dumps(r) for r in rows))
    reformatted = write(tmp_path, "two.jsonl", "\n\n".join(
        json.dumps(r, indent=None, separators=(", ", ":  ")) for r in reversed(rows)))
    rows[0]["relevant"] = {"d1": 1, "d2": 1}
    edited = write(tmp_path, "three.jsonl", "\n".join(json.dumps(r) for r in rows))
    v1 = load_golden_set("g", cfg(one)).version
    assert v1 == load_golden_set("g", cfg(reformatted)).version
    assert v1 != load_golden_set("g", cfg(edited)).version
    golden = load_golden_set("g", cfg(one))
    assert GoldenSet.from_json("g", "store", golden.to_json()).version == v1


def test_id_type_mismatch_names_both(tmp_path: Path) -> None:
    path = write(tmp_path, "g.jsonl", json.dumps({"id": "a", "query": "x",
                                                  "relevant": ["json.dumps#0", "12"]}))
    golden = load_golden_set("docs", cfg(path))
    check_id_type(golden, "str", "faiss-docs")
    with pytest.raises(GoldenSetError) as err:
        check_id_type(golden, "int", "faiss-docs")
    assert str(err.value) == (
        f"{path}: golden set 'docs' has string document ids (e.g. 'json.dumps#0', 1 in all) "
        "but target 'faiss-docs' keys its documents by int; use the index's integer ids in "
        "the golden set, or a target that stores string ids")
