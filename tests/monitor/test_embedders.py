"""The embedder fingerprint follows what the pipeline does, not how its settings are spelt.

all-MiniLM-L6-v2 ends with a Normalize module, so ``normalize: false`` changes none of its
vectors; the fingerprint must not change either, or identical vectors are refused as a
pipeline change. Where the setting does change the vectors (a model without that module,
or a Matryoshka truncation after it), the fingerprint must change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from ragmon.monitor.embedders.sentence_transformers import (
    SentenceTransformerEmbedder,
    SentenceTransformersConfig,
)

TEXTS = [
    "Return the number of items in a container.",
    "Open a file and return a stream; raise OSError upon failure.",
    "asyncio.gather runs awaitable objects concurrently.",
    "x",
]


def embedder(model: str, **settings: object) -> SentenceTransformerEmbedder:
    cfg = SentenceTransformersConfig(kind="sentence-transformers", model=model, **settings)
    return SentenceTransformerEmbedder("e", cfg)


def norms(vectors: np.ndarray) -> np.ndarray:
    return np.asarray(np.linalg.norm(vectors.astype(np.float64), axis=1))


def test_normalize_false_on_a_normalising_model_keeps_the_fingerprint(minilm) -> None:  # type: ignore[no-untyped-def]
    off = embedder("all-MiniLM-L6-v2", normalize=False)
    same = off.encode(TEXTS)
    np.testing.assert_allclose(same, minilm.encode(TEXTS), atol=1e-6)
    assert off.fingerprint_id() == minilm.fingerprint_id()


@pytest.fixture(scope="module")
def model_without_normalize(minilm, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    """The bundled model's files (weights linked, not copied) without its Normalize module:
    the same network, whose vectors are only normalised when the setting asks."""
    source = minilm.model_path
    out = tmp_path_factory.mktemp("no-normalize")
    for file in source.rglob("*"):
        if file.is_dir() or "2_Normalize" in file.parts:
            continue
        target = out / file.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(file, target)
    modules = json.loads((source / "modules.json").read_text())
    (out / "modules.json").unlink()
    (out / "modules.json").write_text(json.dumps(
        [m for m in modules if not m["type"].endswith("Normalize")]))
    return out


def test_normalize_setting_that_changes_the_vectors_changes_the_fingerprint(
    model_without_normalize: Path,
) -> None:
    on = embedder(str(model_without_normalize), normalize=True)
    off = embedder(str(model_without_normalize), normalize=False)
    assert np.abs(norms(off.encode(TEXTS)) - 1.0).max() > 0.1  # really not unit vectors
    np.testing.assert_allclose(norms(on.encode(TEXTS)), 1.0, atol=1e-5)
    assert on.fingerprint_id() != off.fingerprint_id()
    assert on.fingerprint()["normalize"] is True and off.fingerprint()["normalize"] is False


def test_truncation_after_the_models_normalisation_is_not_unit_norm(minilm) -> None:  # type: ignore[no-untyped-def]
    on = embedder("all-MiniLM-L6-v2", normalize=True, truncate_dim=128)
    off = embedder("all-MiniLM-L6-v2", normalize=False, truncate_dim=128)
    assert np.abs(norms(off.encode(TEXTS)) - 1.0).max() > 0.05
    assert on.fingerprint_id() != off.fingerprint_id()
    assert on.fingerprint_id() != minilm.fingerprint_id()
