"""Chroma, LanceDB and Qdrant specifics: stores that are down or missing, empty
collections, and Chroma's client-side exact search under a memory budget."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragmon.monitor.errors import TargetError, TargetUnavailable
from ragmon.monitor.targets import VectorTarget

Build = Callable[..., VectorTarget]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
@pytest.mark.parametrize("kind", ["chroma", "qdrant"])
def test_a_server_that_is_down_is_named(build: Build, kind: str, data: Any) -> None:
    port = closed_port()
    raw: dict[str, Any] = {"kind": kind, "url": f"http://127.0.0.1:{port}", "collection": "docs",
                           "timeout": "2s"}
    if kind == "qdrant":
        raw["api_key"] = "qdrant-key-123"
    target = build("docs", raw)
    with pytest.raises(TargetUnavailable) as info:
        target.search(data.queries[:1], 5)
    engine = "Chroma server" if kind == "chroma" else "Qdrant"
    assert str(info.value).startswith(f"target 'docs': {engine} at http://127.0.0.1:{port} is "
                                      "unreachable")
    assert "qdrant-key-123" not in str(info.value)


@pytest.mark.parametrize(("kind", "location", "message"), [
    ("chroma", {"collection": "nope"},
     "collection 'nope' does not exist in Chroma directory .*; collections: docs, docs_weak, "
     "empty"),
    ("qdrant", {"collection": "nope"},
     "collection 'nope' does not exist in Qdrant local directory .*; collections: docs, empty"),
    ("lancedb", {"table": "nope"},
     "table 'nope' does not exist at .*; tables: docs, docs_weak, empty"),
])
def test_a_missing_collection_lists_the_ones_there(build: Build, request: pytest.FixtureRequest,
                                                   kind: str, location: dict[str, str],
                                                   message: str) -> None:
    folder = request.getfixturevalue({"chroma": "chroma_dir", "qdrant": "qdrant_dir",
                                      "lancedb": "lance_dir"}[kind])
    raw = {"kind": kind, "uri" if kind == "lancedb" else "path": str(folder), **location}
    target = build("docs", raw)
    with pytest.raises(TargetError, match=message):
        target.count()
    target.close()


@pytest.mark.parametrize("kind", ["chroma", "qdrant", "lancedb"])
def test_a_missing_directory_is_unavailable(build: Build, tmp_path: Path, kind: str) -> None:
    raw = {"kind": kind, "uri" if kind == "lancedb" else "path": str(tmp_path / "gone"),
           "collection" if kind != "lancedb" else "table": "docs"}
    with pytest.raises(TargetUnavailable, match="does not exist"):
        build("docs", raw).count()
    assert not (tmp_path / "gone").exists()  # never created as a side effect


@pytest.mark.parametrize("kind", ["chroma", "qdrant", "lancedb"])
def test_empty_collection_answers_nothing(build: Build, request: pytest.FixtureRequest,
                                          kind: str, data: Any) -> None:
    folder = request.getfixturevalue({"chroma": "chroma_dir", "qdrant": "qdrant_dir",
                                      "lancedb": "lance_dir"}[kind])
    raw = {"kind": kind, "uri" if kind == "lancedb" else "path": str(folder),
           "collection" if kind != "lancedb" else "table": "empty"}
    if kind == "lancedb":
        raw["metric"] = "cosine"  # no index to read it from
    target = build("docs", raw)
    try:
        assert target.count() == 0
        assert target.search(data.queries[:2], 5).ids == [[], []]
        assert target.exact_search(data.queries[:2], 5).ids == [[], []]
        assert target.sample(5, 0).ids == []
    finally:
        target.close()


def test_chroma_exact_search_with_a_small_block_cap_reads_every_vector(
        build: Build, chroma_dir: Path, data: Any) -> None:
    raw = {"kind": "chroma", "path": str(chroma_dir), "collection": "docs", "page_size": 300}
    capped = build("s", {**raw, "exact_memory": 500 * 384 * 4}).exact_search(data.queries[:3], 5)
    assert capped.exact and capped.exact_mode == "stream"
    assert capped.scanned == len(data.vectors)
    whole = build("w", raw).exact_search(data.queries[:3], 5)
    assert capped.ids == whole.ids
    truth = np.argsort(-(data.queries[:3] @ data.vectors.T), axis=1)[:, :5]
    assert whole.ids == [[str(i) for i in row] for row in truth]
    # distances on Chroma's scale: 1 - cosine, so they agree with a numpy recomputation
    v = data.vectors[[int(i) for i in whole.ids[0]]]
    np.testing.assert_allclose(whole.scores[0], 1 - v @ data.queries[0], atol=1e-5)


def test_lancedb_int_ids_and_unindexed_rows(build: Build, lance_dir: Path, data: Any) -> None:
    target = build("l", {"kind": "lancedb", "uri": str(lance_dir), "table": "docs"})
    desc = target.describe()
    assert desc.id_type == "int" and desc.metric == "cosine"
    assert desc.stats["num_unindexed_rows"] == 0
    assert target.fetch(["3", "x", "99999"]).missing == ["x", "99999"]


def test_a_local_qdrant_target_answers_from_other_threads(build: Build, qdrant_dir: Path,
                                                          data: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    target = build("q", {"kind": "qdrant", "path": str(qdrant_dir), "collection": "docs"})
    try:
        want = target.search(data.queries[:2], 5).ids
        with ThreadPoolExecutor(2) as pool:
            got = list(pool.map(lambda _: target.search(data.queries[:2], 5).ids, range(4)))
    finally:
        target.close()
    assert got == [want] * 4


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A real Chroma server (the ``chroma run`` CLI the chromadb wheel ships) on 127.0.0.1."""
    import shutil
    import subprocess
    import sys
    import time
    import urllib.request

    port = closed_port()
    exe = shutil.which("chroma", path=str(Path(sys.executable).parent))
    assert exe, "chromadb's 'chroma' command is not installed next to this Python"
    proc = subprocess.Popen([exe, "run", "--path", str(tmp_path_factory.mktemp("chroma-srv")),
                             "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "chroma did not start"
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_chroma_over_http(build: Build, chroma_server: str, data: Any) -> None:
    import chromadb

    client = chromadb.HttpClient(host="127.0.0.1", port=int(chroma_server.rsplit(":", 1)[1]),
                                 settings=chromadb.Settings(anonymized_telemetry=False))
    col = client.create_collection("docs", configuration={"hnsw": {"space": "ip"}})
    col.add(ids=data.ids[:500], embeddings=data.vectors[:500])
    target = build("remote", {"kind": "chroma", "url": chroma_server, "collection": "docs",
                              "headers": {"X-Chroma-Token": "chroma-token-9"}})
    desc = target.describe()
    assert (desc.count, desc.dimension, desc.metric) == (500, 384, "ip")
    exact = target.exact_search(data.queries[:5], 5)
    truth = np.argsort(-(data.queries[:5] @ data.vectors[:500].T), axis=1)[:, :5]
    assert exact.ids == [[data.ids[i] for i in row] for row in truth]
    live = target.search(data.queries[:5], 5)
    assert [len(r) for r in live.ids] == [5] * 5
    np.testing.assert_allclose(target.fetch([data.ids[7]]).vectors[0], data.vectors[7],
                               atol=1e-6)
