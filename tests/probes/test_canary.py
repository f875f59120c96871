"""The canary probe catches real changes of the embedding pipeline, and only those.

Every change here is made for real: a shorter truncation length, a Matryoshka-style
dimension cut, and a different pooling (a different model directory). No vector is edited.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from ragmon.monitor.app import load_config
from ragmon.monitor.context import ProbeContext
from ragmon.monitor.runner import Runner
from ragmon.monitor.store import Store


def run_canary(tmp_path: Path, store_url: str, texts: list[str] | None = None,
               **embedder: Any) -> Any:
    """One canary run with the given embedder settings, through the real runner and store."""
    canary: dict[str, Any] = {"kind": "canary", "embedder": "e", "every": "1m", "timeout": "5m"}
    if texts is not None:
        canary["texts"] = texts
    cfg = {
        "store": {"url": store_url},
        "embedders": {"e": {"kind": "sentence-transformers", "model": "all-MiniLM-L6-v2",
                            **embedder}},
        "probes": {"canary": canary},
    }
    path = tmp_path / "ragmon.yaml"
    path.write_text(yaml.safe_dump(cfg))
    config = load_config(path, environ={})
    store = Store(store_url)
    store.migrate()
    context = ProbeContext(config, store, config.plugins)
    try:
        result, run_id = Runner(context, CollectorRegistry(), context.plugins.probes).run("canary")
    finally:
        context.close()
        store.close()
    assert run_id is not None
    return result


def values(result: Any) -> dict[str, float]:
    return {name: value for name, _, value in result.values}


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ragmon.db'}"


@pytest.fixture
def captured(tmp_path: Path, sqlite_url: str) -> str:
    """A store holding the reference of the default pipeline (the canary's own table logic is
    store-independent; the store tests cover both backends)."""
    store_url = sqlite_url
    first = run_canary(tmp_path, store_url)
    assert first.status == "ok"
    assert first.details == {"reference": "captured", "reason": "first run"}
    assert values(first)["canary_changed"] == 0
    return store_url


def test_same_pipeline_is_unchanged(tmp_path: Path, captured: str) -> None:
    result = run_canary(tmp_path, captured)
    v = values(result)
    assert result.details["verdict"] == "unchanged"
    assert v["canary_changed"] == 0
    assert v["canary_cosine_min"] > 0.99999
    assert v["canary_norm_deviation_max"] < 1e-4
    assert result.details["fingerprint_diff"] == {}


def test_shorter_truncation_is_caught(tmp_path: Path, captured: str) -> None:
    result = run_canary(tmp_path, captured, max_seq_length=32)
    v = values(result)
    assert result.details["verdict"] == "changed"
    assert v["canary_changed"] == 1
    assert v["canary_cosine_min"] < 0.99
    # The short canaries fit in 32 tokens and do not move; the two long ones do.
    per_text = result.details["per_text_cosine"]
    assert min(per_text[:-2]) > 0.99999
    assert max(per_text[-2:]) < 0.99
    assert result.details["fingerprint_diff"]["max_seq_length"] == [256, 32]


def test_dimension_cut_is_its_own_result(tmp_path: Path, captured: str) -> None:
    result = run_canary(tmp_path, captured, truncate_dim=128)
    assert result.details["verdict"] == "dimension-changed"
    assert result.details["message"] == (
        "embedding dimension changed from 384 to 128: the embedding model was swapped")
    assert values(result)["canary_changed"] == 1
    assert values(result)["canary_dimension"] == 128


def test_a_different_model_is_caught(tmp_path: Path, captured: str) -> None:
    """A model directory with CLS pooling instead of mean pooling: same dimension, same
    normalisation, different vectors, as when a team swaps the model behind one name."""
    from sentence_transformers import SentenceTransformer

    try:  # the module path of sentence-transformers >= 6
        from sentence_transformers.sentence_transformer import modules as models
    except ImportError:
        from sentence_transformers import models  # type: ignore[no-redef]

    from ragmon.monitor.embedders.sentence_transformers import bundled_model_path

    base = str(bundled_model_path())
    word = models.Transformer(base)
    pool = models.Pooling(word.get_embedding_dimension(), pooling_mode="cls")
    other = tmp_path / "other-model"
    SentenceTransformer(modules=[word, pool, models.Normalize()], device="cpu").save(str(other))
    result = run_canary(tmp_path, captured, model=str(other))
    v = values(result)
    assert result.details["verdict"] == "changed"
    assert v["canary_changed"] == 1
    assert v["canary_cosine_min"] < 0.95
    assert v["canary_dimension"] == 384
    assert {"model", "model_digest"} <= set(result.details["fingerprint_diff"])


def test_edited_canary_texts_recapture(tmp_path: Path, store_url: str) -> None:
    """On SQLite and PostgreSQL: capture, then a new reference when the texts change."""
    run_canary(tmp_path, store_url)
    result = run_canary(tmp_path, store_url, texts=["one text", "another text"])
    assert result.details == {"reference": "captured", "reason": "canary texts changed"}
