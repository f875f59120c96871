"""Target entries in a config file: every kind loads, paths resolve against the file, bad
entries are named with their key, and a missing client names the pip command."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ragmon.monitor.app import load_config
from ragmon.monitor.errors import ConfigError
from ragmon.monitor.kinds import KindSpec, Registry
from ragmon.monitor.targets import TARGET_KINDS
from ragmon.monitor.targets.faiss import FaissConfig, FaissTarget

EVERY_KIND = """
targets:
  docs-faiss: {kind: faiss, path: index/docs.faiss, ef_search: 64, exact_memory: 512MiB}
  docs-pg:
    kind: pgvector
    url: {env: PG_URL}
    table: docs
    filter_columns: [lang]
    ef_search: 100
  docs-qdrant: {kind: qdrant, url: "http://qdrant:6333", collection: docs, hnsw_ef: 128}
  docs-chroma: {kind: chroma, path: chroma, collection: docs}
  docs-lance: {kind: lancedb, uri: lance, table: docs, nprobes: 20}
  docs-app:
    kind: http
    url: http://rag-app:8080/search
    headers: {Authorization: {env: APP_TOKEN}}
    request: {query: query.embedding, k: top_k}
    response: {hits: data.matches, id: doc.id, score: similarity}
"""


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "ragmon.yaml"
    path.write_text(textwrap.dedent(text))
    return load_config(path, environ={})


def test_every_kind_loads_and_paths_resolve_against_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PG_URL", "postgresql://u:pw@db/vectors")
    monkeypatch.setenv("APP_TOKEN", "Bearer t")
    config = load(tmp_path, EVERY_KIND)
    targets = config.targets  # type: ignore[attr-defined]
    assert sorted(t.kind for t in targets.values()) == sorted(TARGET_KINDS)
    assert targets["docs-faiss"].path == tmp_path / "index" / "docs.faiss"
    assert targets["docs-faiss"].exact_memory == 512 << 20
    assert targets["docs-chroma"].path == tmp_path / "chroma"
    assert targets["docs-app"].headers["Authorization"].get_secret_value() == "Bearer t"


@pytest.mark.parametrize(("entry", "message"), [
    ("{kind: chroma, collection: docs}",
     "targets.t: give exactly one of 'path' (a persistent directory) or 'url'"),
    ("{kind: qdrant, collection: docs, api_key: qk-secret-1}",
     "targets.t: give exactly one of 'url' (a Qdrant server) or 'path' (local mode)"),
    ("{kind: faiss, path: x.faiss, nprobes: 3}", "targets.t.nprobes: unknown key; valid keys: "
     "ef_search, embedder, exact_memory, ground_truth, ids_path, kind, metric, nprobe, path, "
     "timeout"),
    ("{kind: faiss, path: x.faiss, exact_memory: lots}",
     "targets.t.exact_memory: not a memory size; use a positive number and a unit "
     "(KiB, MiB, GiB), like '1GiB', got 'lots'"),
    ("{kind: pgvector, url: 'postgresql://x/y', table: 'docs; DROP TABLE docs'}",
     "targets.t.table: not a plain SQL identifier (letters, digits, _; schema.table allowed), "
     "got 'docs; DROP TABLE docs'"),
    ("{kind: http, url: 'ftp://x/search'}",
     "targets.t.url: scheme 'ftp' is not http or https; use an http:// or https:// URL"),
])
def test_bad_target_entries_are_named(tmp_path: Path, entry: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, f"targets:\n  t: {entry}\n")
    assert [i.path + ": " + i.message for i in info.value.issues] == [message]
    assert "qk-secret-1" not in str(info.value)


def test_a_missing_client_names_the_pip_command() -> None:
    spec = KindSpec("faiss", FaissTarget, FaissConfig, "lancedb", ("ragmon_no_such_module",))
    registry = Registry("target", [spec])
    assert registry.missing_requirement("faiss") == (
        "target kind 'faiss' needs ragmon_no_such_module: pip install 'ragmon[lancedb]'")
    assert TARGET_KINDS.missing_requirement("lancedb") is None


def test_every_registered_kind_names_its_extra() -> None:
    extras = {kind: spec.extra for kind, spec in TARGET_KINDS.items()}
    assert extras == {"faiss": None, "pgvector": "pgvector", "qdrant": "qdrant",
                      "chroma": "chroma", "lancedb": "lancedb", "http": "http"}


def test_a_loaded_entry_builds_a_working_target(tmp_path: Path) -> None:
    import faiss
    import numpy as np

    from ragmon.monitor.targets import build_target

    (tmp_path / "index").mkdir()
    index = faiss.IndexFlatL2(4)
    index.add(np.eye(4, dtype=np.float32))
    faiss.write_index(index, str(tmp_path / "index" / "docs.faiss"))
    config = load(tmp_path, "targets:\n  docs: {kind: faiss, path: index/docs.faiss}\n")
    target = build_target("docs", config.targets["docs"])  # type: ignore[attr-defined]
    assert target.search(np.eye(4, dtype=np.float32)[2:3], 1).ids == [["2"]]
    assert target.describe().metric == "l2"
