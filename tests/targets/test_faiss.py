"""FAISS specifics: file versions, id sidecars, knobs, metrics, empty and broken files."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest

from ragmon.monitor.errors import TargetError, TargetResponseError, TargetUnavailable
from ragmon.monitor.targets import VectorTarget

Build = Callable[..., VectorTarget]


def write(path: Path, vectors: np.ndarray, factory: str = "Flat",
          metric: int = faiss.METRIC_INNER_PRODUCT) -> Path:
    index = faiss.index_factory(vectors.shape[1], factory, metric)
    if not index.is_trained:
        index.train(vectors)
    index.add(vectors)
    tmp = path.with_name(path.name + ".tmp")
    faiss.write_index(index, str(tmp))
    os.replace(tmp, path)  # what an index builder does: atomic rename
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_a_rebuilt_file_is_seen_at_the_next_call(build: Build, tmp_path: Path,
                                                 data: Any) -> None:
    path = write(tmp_path / "i.faiss", data.vectors[:100])
    target = build("docs", {"kind": "faiss", "path": str(path)})
    before = target.describe()
    assert target.count() == 100
    write(path, data.vectors[:300], "HNSW16")
    after = target.describe()
    assert target.count() == after.count == 300
    assert after.params["index"] == "IndexHNSWFlat"
    assert after.fingerprint() != before.fingerprint()
    hit = target.search(data.vectors[250:251], 1)
    assert hit.ids == [["250"]]


def test_a_file_replaced_while_open_is_read_whole(build: Build, tmp_path: Path,
                                                  data: Any) -> None:
    """The index is read from one descriptor: a rename during the read cannot mix files."""
    path = write(tmp_path / "i.faiss", data.vectors[:100])
    target = build("docs", {"kind": "faiss", "path": str(path)})
    handle = open(path, "rb")  # noqa: SIM115 - held open across the rename on purpose
    write(path, data.vectors[:50])
    try:
        old = faiss.read_index(faiss.PyCallbackIOReader(handle.read, 1 << 22))
    finally:
        handle.close()
    assert old.ntotal == 100 and target.count() == 50


def test_a_pinned_block_reads_one_version_of_a_rebuilt_file(build: Build, tmp_path: Path,
                                                            data: Any) -> None:
    """Inside ``pinned()`` every call of the thread reads the version its first call read,
    through nested blocks, however often the file is rebuilt; another thread, and the same
    thread after the block, read the file as it is now."""
    import threading

    path = write(tmp_path / "i.faiss", data.vectors[:100])
    target = build("docs", {"kind": "faiss", "path": str(path)})
    seen: list[int] = []
    with target.pinned():
        assert target.count() == 100
        write(path, data.vectors[:300], "HNSW16")
        with target.pinned():
            assert target.count() == 100
            assert target.describe().params["index"] == "IndexFlatIP"
        assert target.exact_search(data.vectors[250:251], 1).ids != [["250"]]
        other = threading.Thread(target=lambda: seen.append(target.count()))
        other.start()
        other.join()
        write(path, data.vectors[:50])
        assert target.count() == 100
    assert seen == [300] and target.count() == 50
    with target.pinned():  # a new block reads the file afresh
        write(path, data.vectors[:70])
        assert target.count() == 70


@pytest.mark.parametrize(("factory", "index_metric", "configured", "distances"), [
    ("HNSW8", faiss.METRIC_INNER_PRODUCT, None, True),
    ("HNSW8", faiss.METRIC_INNER_PRODUCT, "cosine", True),
    ("Flat", faiss.METRIC_L2, None, True),
    ("HNSW8", faiss.METRIC_L2, "cosine", False),  # live scores L2, exact by inner product
    ("Flat", faiss.METRIC_L2, "ip", False),
    ("Flat", faiss.METRIC_INNER_PRODUCT, "l2", False),
    ("Flat", faiss.METRIC_L1, None, False),
    ("IVF4,PQ4", faiss.METRIC_INNER_PRODUCT, None, False),  # quantised: approximate scores
])
def test_scores_are_distances_only_when_both_searches_score_by_one_metric(
    build: Build, tmp_path: Path, data: Any, factory: str, index_metric: int,
    configured: str | None, distances: bool,
) -> None:
    """The recall probe ranks fidelity by the scores instead of fetched vectors only when
    the live search (the index's own metric) and the exact search (the configured one) give
    the same distance over the stored vectors; then the scores of one vector agree."""
    vectors = np.ascontiguousarray(data.vectors[:400], dtype=np.float32)
    path = write(tmp_path / "i.faiss", vectors, factory, index_metric)
    config = {"kind": "faiss", "path": str(path)}
    if configured:
        config["metric"] = configured
    target = build("docs", config)
    assert target.describe().scores_are_distances is distances
    if distances:
        live, exact = target.search(vectors[:5], 3), target.exact_search(vectors[:5], 3)
        for ids, scores, exact_ids, exact_scores in zip(live.ids, live.scores, exact.ids,
                                                        exact.scores, strict=True):
            for doc, score in zip(ids, scores, strict=True):
                if doc in exact_ids:
                    assert score == pytest.approx(exact_scores[exact_ids.index(doc)],
                                                  abs=1e-5)


def test_sidecar_ids_name_the_vectors(build: Build, tmp_path: Path, data: Any) -> None:
    path = write(tmp_path / "i.faiss", data.vectors[:20])
    ids = tmp_path / "ids.txt"
    ids.write_text("".join(f"doc-{i}\n" for i in range(20)))
    target = build("docs", {"kind": "faiss", "path": str(path), "ids_path": str(ids)})
    assert target.describe().id_type == "str"
    assert target.search(data.vectors[3:4], 1).ids == [["doc-3"]]
    assert target.exact_search(data.vectors[3:4], 1).ids == [["doc-3"]]
    got = target.fetch(["doc-4", "doc-99"])
    assert got.ids == ["doc-4"] and got.missing == ["doc-99"]
    np.testing.assert_array_equal(got.vectors[0], data.vectors[4])
    ids.write_text("doc-0\n")
    with pytest.raises(TargetResponseError, match=r"has 1 lines but the index holds 20 vectors"):
        target.count()


def test_knobs_that_do_not_apply_are_named(build: Build, tmp_path: Path, data: Any) -> None:
    path = write(tmp_path / "i.faiss", data.vectors[:20])
    target = build("docs", {"kind": "faiss", "path": str(path), "ef_search": 32})
    with pytest.raises(TargetError, match=r"efSearch does not apply to this index \(IndexFlatIP\); "
                       "remove ef_search from the config"):
        target.search(data.queries[:1], 5)


def test_missing_and_corrupt_files(build: Build, tmp_path: Path, data: Any) -> None:
    missing = build("docs", {"kind": "faiss", "path": str(tmp_path / "nope.faiss")})
    with pytest.raises(TargetUnavailable, match=r"target 'docs': index file '.*nope.faiss' "
                       "does not exist"):
        missing.search(data.queries[:1], 5)
    bad = tmp_path / "bad.faiss"
    bad.write_bytes(b"not an index at all")
    with pytest.raises(TargetError, match=r"index file '.*bad.faiss' failed: RuntimeError"):
        build("docs", {"kind": "faiss", "path": str(bad)}).count()


def test_empty_index_answers_nothing(build: Build, tmp_path: Path) -> None:
    path = tmp_path / "empty.faiss"
    faiss.write_index(faiss.IndexFlatIP(8), str(path))
    target = build("docs", {"kind": "faiss", "path": str(path)})
    query = np.ones((2, 8), dtype=np.float32)
    assert target.count() == 0
    assert target.search(query, 5).ids == [[], []]
    assert target.exact_search(query, 5).ids == [[], []]
    assert target.sample(5, 0).ids == []


@pytest.mark.parametrize(("metric", "faiss_metric"), [("l2", faiss.METRIC_L2),
                                                     ("ip", faiss.METRIC_INNER_PRODUCT)])
def test_l2_and_inner_product_match_numpy(build: Build, tmp_path: Path, rng: Any,
                                          metric: str, faiss_metric: int) -> None:
    vectors = rng.normal(size=(500, 16)).astype(np.float32)
    queries = rng.normal(size=(10, 16)).astype(np.float32)
    path = write(tmp_path / "i.faiss", vectors, "HNSW16", faiss_metric)
    target = build("docs", {"kind": "faiss", "path": str(path), "ef_search": 200})
    assert target.describe().metric == metric
    if metric == "l2":
        truth = np.argsort(((queries[:, None, :] - vectors[None]) ** 2).sum(-1), axis=1)[:, :5]
    else:
        truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :5]
    want = [[str(i) for i in row] for row in truth]
    assert target.exact_search(queries, 5).ids == want
    assert target.search(queries, 5).ids == want  # ef 200 on 500 points: exact in practice


def test_a_small_block_cap_still_searches_the_whole_index(build: Build, tmp_path: Path,
                                                         data: Any) -> None:
    path = write(tmp_path / "ivf.faiss", data.vectors, "IVF8,Flat")
    capped = build("docs", {"kind": "faiss", "path": str(path), "exact_memory": 300 * 384 * 4})
    result = capped.exact_search(data.queries[:4], 5)
    assert result.scanned == len(data.vectors) and result.exact_mode == "stream"
    whole = build("whole", {"kind": "faiss", "path": str(path), "exact_memory": "1GiB"})
    assert result.ids == whole.exact_search(data.queries[:4], 5).ids
    truth = np.argsort(-(data.queries[:4] @ data.vectors.T), axis=1)[:, :5]
    assert result.ids == [[str(i) for i in row] for row in truth]
